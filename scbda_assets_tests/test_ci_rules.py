"""The CI rule: a test that skips fails under CI=true, and stays a skip (with its install hint) outside CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# The three ways the suite skips on a missing tool: in the test (pytest.skip), by a mark (skipif, as the
# docker-compose checks), in a fixture (the browser tests' Chromium).
SKIPPING_TESTS = {
    "in the test": "import pytest\n\n"
                   "def test_needs_a_tool():\n"
                   "    pytest.skip('frobnicator not installed (Debian: apt-get install -y frobnicator)')\n",
    "by a skipif mark": "import pytest\n\n"
                        "@pytest.mark.skipif(True, reason='frobnicator not installed "
                        "(Debian: apt-get install -y frobnicator)')\n"
                        "def test_needs_a_tool():\n"
                        "    pass\n",
    "in a fixture": "import pytest\n\n"
                    "@pytest.fixture\n"
                    "def frobnicator():\n"
                    "    pytest.skip('frobnicator not installed (Debian: apt-get install -y frobnicator)')\n\n"
                    "def test_needs_a_tool(frobnicator):\n"
                    "    pass\n",
}


def _run_skipping_test(tmp_path, ci: str, source: str) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_needs_a_tool.py"
    test_file.write_text(source)
    env = {**os.environ, "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "scbda_assets_tests.ci_rules", "-p", "no:cacheprovider", "-rA",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(test_file)],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.getcwd(),
    )


@pytest.mark.parametrize("where", SKIPPING_TESTS)
def test_a_skip_fails_under_ci_with_its_reason(tmp_path, where):
    result = _run_skipping_test(tmp_path, "true", SKIPPING_TESTS[where])
    assert result.returncode == 1, result.stdout
    # (a skip in the setup phase, by a mark or a fixture, fails as pytest reports setup failures: an error)
    assert ("1 failed" if where == "in the test" else "1 error") in result.stdout
    assert "CI=true forbids skips" in result.stdout and "apt-get install -y frobnicator" in result.stdout


@pytest.mark.parametrize("where", SKIPPING_TESTS)
def test_a_skip_stays_a_skip_with_the_install_hint_outside_ci(tmp_path, where):
    result = _run_skipping_test(tmp_path, "", SKIPPING_TESTS[where])
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "apt-get install -y frobnicator" in result.stdout
