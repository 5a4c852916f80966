"""`scbda run` (what `make run` calls): embedded services, `dagster dev` and the dashboard; Ctrl-C stops them all.

Only processes started here are stopped, by PID (services that were already up are left running).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from scbda_assets.first_start import seed_if_empty
from scbda_assets.services import services_up
from scbda_assets.services.process import free_port, port_open, private_dir, stop_pid
from scbda_assets.settings import Settings, redact

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_APP = REPO_ROOT / "dashboard" / "app.py"
INSTANCE_TEMPLATE = Path(__file__).with_name("dagster_instance.yaml")


RUN_PORTS = ("MONGO", "REDIS", "SPARK", "DAGSTER", "DASHBOARD")


def isolated_run_environment(home: Path, **settings: str) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of a `scbda run` of its own (the soak, the dashboard benchmark, the launcher test): the
    caller's variables without its SCBDA_* ones, ``home`` as SCBDA_HOME, a free port for every service and UI, then
    ``settings`` (more SCBDA_* values). Returns it, and the ports by name."""
    ports = {name: free_port() for name in RUN_PORTS}
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCBDA_")}
    env.update({f"SCBDA_{name}_PORT": str(port) for name, port in ports.items()})
    env.update({"SCBDA_HOME": str(home), **settings})
    return env, ports


def prepare_dagster_home(settings: Settings) -> Path:
    """A persistent DAGSTER_HOME under $SCBDA_HOME (dagster dev's default temporary one is deleted on exit)."""
    private_dir(settings.home)  # the state folder holds passwords and data: its owner's only
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    return home


def _reset_signals() -> None:
    # A background `make run` inherits SIGINT/SIGTERM as ignored; dagster dev would then never stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _spawn(argv: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else None
    return subprocess.Popen(argv, env=env, cwd=REPO_ROOT, preexec_fn=_reset_signals, start_new_session=True,
                            stdout=out, stderr=subprocess.STDOUT if out else None)


def run(settings: Settings) -> int:
    import os

    endpoints, started_services = services_up(settings)
    try:
        # Before the minute stream starts, so the generator schedule continues from the seeded clock; on the
        # MongoDB that services_up resolved (never a second embedded one).
        seeded_store = dataclasses.replace(settings, mongo_uri=endpoints.get("SCBDA_MONGO_URI", settings.mongo_uri),
                                           redis_url=endpoints.get("SCBDA_REDIS_URL", settings.redis_url))
        seed_if_empty(seeded_store, now=dt.datetime.now(dt.UTC), echo=lambda line: print(line, flush=True))
    except BaseException:  # Ctrl-C or a failure while seeding: stop what was started here, then report
        for service in reversed(started_services):
            service.stop()
        raise
    env = {**os.environ, **endpoints, "DAGSTER_HOME": str(prepare_dagster_home(settings))}
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # see scbda_assets/__init__.py
    bin_dir = Path(sys.executable).parent
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for key, value in endpoints.items():  # for the eye (a log may be shared); `scbda services up` has the secrets
            print(f"{key}={redact(value)}")
        children.append(_spawn(
            [str(bin_dir / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(settings.dagster_port)], env))
        urls = [f"Dagster UI:  http://127.0.0.1:{settings.dagster_port}"]
        if DASHBOARD_APP.exists():
            children.append(_spawn(
                [str(bin_dir / "streamlit"), "run", str(DASHBOARD_APP), "--server.address", "127.0.0.1",
                 "--server.port", str(settings.dashboard_port), "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"], env, settings.home / "dashboard.log"))
            urls.append(f"Dashboard:   http://127.0.0.1:{settings.dashboard_port}")
        deadline = time.monotonic() + 120
        while not stopping and not port_open(settings.dagster_port) and time.monotonic() < deadline:
            time.sleep(0.5)
        print("\n".join(["", *urls, "Ctrl-C stops everything started here.", ""]), flush=True)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.poll() not in (None, 0)]
        return 1 if failed and not stopping else 0
    finally:
        for child in reversed(children):
            _stop_group(child)
        for service in reversed(started_services):
            service.stop()
        print("stopped: " + ", ".join(["dagster dev", "dashboard"][: len(children)]
                                        + [s.name for s in started_services]), flush=True)


def _stop_group(child: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the child's process group (dagster dev's webserver and daemon with it), then SIGKILL."""
    if child.poll() is not None:
        return
    try:
        import os

        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    except ProcessLookupError:
        pass
    stop_pid(child.pid, 1)
