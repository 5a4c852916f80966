"""Dashboard fixtures: a `streamlit run` server and a `dagster-webserver` on free ports (stopped by PID), and
headless Chromium (the Debian package; never downloaded)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow  # noqa: F401  # load pyarrow on the main thread (AppTest runs scripts on short-lived threads)
import pytest

from scbda_assets.services.process import free_port, stop_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def wait_http(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s: {log.read_text()[-2000:]}")


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop the process and the children it started (dagster-webserver runs its code server as a child)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if process.poll() is None:
        stop_pid(process.pid, 20)
    process.wait(10)
    for child in children:
        stop_pid(child.pid, 10)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Debian package's Chromium. Missing, the browser tests skip with how to install it; under CI=true that skip
    fails the run (scbda_assets_tests/ci_rules.py)."""
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        pytest.skip("headless Chromium is not installed (`make browser` installs the Debian package `chromium`)")
    return path


@pytest.fixture
def dagster_webserver(scbda_environ, tmp_path) -> Iterator[str]:
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    log = tmp_path / "dagster-webserver.log"
    process = spawn([str(BIN / "dagster-webserver"), "-m", "scbda_assets.definitions", "-h", "127.0.0.1",
                     "-p", str(port)], {**os.environ, "DAGSTER_HOME": str(home)}, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", 240, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
