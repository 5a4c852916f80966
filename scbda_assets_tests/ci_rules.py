"""A pytest plugin (loaded by ``addopts`` in pyproject.toml): under ``CI=true`` a skipped test fails.

CI must never be green because a tool was missing (Chromium, docker-compose…): there a test that would skip fails
with its one-line reason. Outside CI the skip stays, and its reason says how to install what is missing.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true forbids skips (a missing tool fails CI): {reason}"
