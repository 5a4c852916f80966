"""The embedded mode binds 127.0.0.1 only (SPEC §4): the argv each service class and the launcher build,
captured instead of started (nothing is launched)."""

from __future__ import annotations


import signal
import subprocess
from types import SimpleNamespace

import pytest

from scbda_assets import launcher
from scbda_assets.services import spark as spark_module
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark
from scbda_assets.settings import Settings

WILDCARDS = ("0.0.0.0", "::", "*", "--bind_ip_all")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"SCBDA_HOME": str(tmp_path / "home")})


def _capture_spawn(service) -> list[list[str]]:
    calls = []

    def spawn(argv, log_file, env=None):
        calls.append([str(arg) for arg in argv])
        return 999_999

    service.process.spawn = spawn  # this instance only; nothing is started
    return calls


def _value_after(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize(("service_class", "flag"), [(EmbeddedMongo, "--bind_ip"), (EmbeddedRedis, "--bind")])
def test_embedded_servers_bind_localhost_only(settings, service_class, flag):
    service = service_class(settings)
    calls = _capture_spawn(service)
    service.launch()
    [argv] = calls
    assert _value_after(argv, flag) == "127.0.0.1"
    assert not set(argv) & set(WILDCARDS)
    assert "@127.0.0.1:" in service.url()  # with the password generated on the first start


def test_embedded_spark_connect_binds_localhost_only(settings, monkeypatch):
    service = EmbeddedSpark(settings)
    calls = []

    def run(argv, env=None, **kwargs):
        calls.append(([str(arg) for arg in argv], env))
        # What the real launcher script leaves behind: the PID file of the server it started.
        pid_file = service.dir / f"spark-{spark_module.IDENT}-{spark_module.SERVER_CLASS}-1.pid"
        pid_file.write_text("999999\n")
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(spark_module, "java_home", lambda: "/nonexistent-java")
    monkeypatch.setattr(spark_module.subprocess, "run", run)
    service.dir.mkdir(parents=True)
    assert service.launch() == 999_999
    [(argv, env)] = calls
    confs = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--conf")
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.driver.bindAddress"] == "127.0.0.1"
    assert confs["spark.driver.host"] == "127.0.0.1"
    assert confs["spark.ui.enabled"] == "false"
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert _value_after(argv, "--master").startswith("local[")
    assert service.url().startswith("sc://127.0.0.1:")


def test_launcher_binds_dagster_and_the_dashboard_to_localhost(settings, monkeypatch, tmp_path):
    spawned = []

    def spawn(argv, env, log=None):
        spawned.append([str(arg) for arg in argv])
        return SimpleNamespace(pid=999_999, poll=lambda: 0)  # "exited": run() returns at once

    app = tmp_path / "app.py"
    app.write_text("")
    monkeypatch.setattr(launcher, "services_up", lambda s: ({"SCBDA_MONGO_URI": "mongodb://127.0.0.1:1"}, []))
    monkeypatch.setattr(launcher, "_spawn", spawn)
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: True)
    monkeypatch.setattr(launcher, "DASHBOARD_APP", app)
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's own handlers
    # No first-start seed: the services are stand-ins (nothing listens on port 1).
    monkeypatch.setattr(launcher, "seed_if_empty", lambda *a, **k: {"seeded": False})
    assert launcher.run(settings) == 0
    dagster, streamlit = spawned
    assert dagster[1:2] == ["dev"]
    assert _value_after(dagster, "-h") == "127.0.0.1"
    assert _value_after(streamlit, "--server.address") == "127.0.0.1"
    assert not (set(dagster) | set(streamlit)) & set(WILDCARDS)
