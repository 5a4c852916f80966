"""`scbda run` (what `make run` calls): starts the services, dagster dev and the dashboard; a signal stops every
process it started, even when it was launched in the background with SIGINT/SIGTERM ignored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from scbda_assets.launcher import isolated_run_environment
from scbda_assets.services.process import port_open


def _wait(predicate, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _job_names(port: int) -> set[str]:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        data = json.loads(urllib.request.urlopen(request, timeout=10).read())["data"]["repositoriesOrError"]
    except (OSError, KeyError, ValueError):
        return set()
    return {job["name"] for node in data.get("nodes", []) for job in node["jobs"]}


def _ignore_signals():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@pytest.mark.slow
def test_run_starts_everything_and_a_signal_stops_it_all(tmp_path):
    # a first start seeds the empty store: 5 minutes here, 2 days by default
    env, ports = isolated_run_environment(tmp_path / "home", SCBDA_SEED_DAYS=str(5 / 1440))
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scbda_assets.cli", "run"], env=env, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=_ignore_signals,  # as a background job in a non-interactive shell
    )
    try:
        assert _wait(lambda: port_open(ports["DAGSTER"]), 240), (tmp_path / "run.log").read_text()[-3000:]
        assert port_open(ports["MONGO"]) and port_open(ports["REDIS"]) and port_open(ports["SPARK"])
        info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports['DAGSTER']}/server_info").read())
        assert "dagster_webserver_version" in info
        # The code location really loaded (an open port alone would hide a load error).
        assert _wait(lambda: "kpi_job" in _job_names(ports["DAGSTER"]), 180), _job_names(ports["DAGSTER"])
        # A persistent DAGSTER_HOME under SCBDA_HOME, with the run queue of the embedded instance.
        assert "dequeue_interval_seconds: 1" in (Path(env["SCBDA_HOME"]) / "dagster" / "dagster.yaml").read_text()
        started = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        services = [json.loads(f.read_text())["pid"] for f in (Path(env["SCBDA_HOME"]) / "services").glob("*.json")]
        assert len(services) == 3
        started |= set(services)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
        assert _wait(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                                     for pid in started), 30)
        assert not any(port_open(port) for port in ports.values())
        output = (tmp_path / "run.log").read_text()
        assert f"Dagster UI:  http://127.0.0.1:{ports['DAGSTER']}" in output
        assert "SCBDA_MONGO_URI=mongodb://scbda:***@127.0.0.1:" in output  # the password stays in the 0600 files
        assert (Path(env["SCBDA_HOME"]) / "mongod" / "password").read_text().strip() not in output
        # Seeded before dagster dev started (its line comes first), ending at the start's minute.
        assert "first start: empty store: seeding 5 minutes of history" in output
        assert output.index("  seeded ") < output.index("Dagster UI:")
    finally:
        if proc.poll() is None:
            proc.kill()
        from scbda_assets.services import services_down
        from scbda_assets.settings import Settings

        services_down(Settings.from_env({k: v for k, v in env.items() if k.startswith("SCBDA_")}))
