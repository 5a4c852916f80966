"""The CI rule: a test that skips fails under CI=true, and stays a skip (with its install hint) outside CI."""

from __future__ import annotations

import os
import subprocess
import sys


def _run_skipping_test(tmp_path, ci: str) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_needs_a_tool.py"
    test_file.write_text(
        "import pytest\n\n"
        "def test_needs_a_tool():\n"
        "    pytest.skip('frobnicator not installed (Debian: apt-get install -y frobnicator)')\n"
    )
    env = {**os.environ, "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "scbda_assets_tests.ci_rules", "-p", "no:cacheprovider", "-rA",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(test_file)],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.getcwd(),
    )


def test_a_skip_fails_under_ci_with_its_reason(tmp_path):
    result = _run_skipping_test(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    assert "CI=true forbids skips" in result.stdout and "apt-get install -y frobnicator" in result.stdout


def test_a_skip_stays_a_skip_with_the_install_hint_outside_ci(tmp_path):
    result = _run_skipping_test(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "apt-get install -y frobnicator" in result.stdout
