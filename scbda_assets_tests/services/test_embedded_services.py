"""The embedded services lifecycle on real binaries: up, reuse, status, down, port taken, explicit URI wins."""

from __future__ import annotations

import shlex
import socket
import subprocess

import pymongo
import pytest
import redis

from scbda_assets.services import embedded_services, resolve_endpoints, services_down, services_up
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import ServiceError, free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.settings import Settings


@pytest.fixture
def own_home(tmp_path):
    """A private $SCBDA_HOME with free ports, torn down even when the test fails."""
    env = {
        "SCBDA_HOME": str(tmp_path / "home"),
        "SCBDA_MONGO_PORT": str(free_port()),
        "SCBDA_REDIS_PORT": str(free_port()),
        "SCBDA_SPARK_PORT": str(free_port()),
        "SCBDA_SPARK_REMOTE": "local",  # Spark's own lifecycle is covered by the suite's spark_server fixture
    }
    yield env
    services_down(Settings.from_env(env))


def test_up_reuse_status_down(own_home):
    settings = Settings.from_env(own_home)
    endpoints, started = services_up(settings)
    assert {s.name for s in started} == {"mongod", "redis"}
    assert endpoints["SCBDA_SPARK_REMOTE"] == "local"
    with pymongo.MongoClient(endpoints["SCBDA_MONGO_URI"], serverSelectionTimeoutMS=3000) as client:
        assert client.admin.command("ping")["ok"] == 1.0
        assert client.server_info()["version"].startswith(("6.", "7.", "8."))
    assert redis.Redis.from_url(endpoints["SCBDA_REDIS_URL"]).ping()
    pids = {s.name: s.status().pid for s in started}

    again, started_again = services_up(settings)
    assert started_again == [] and again == endpoints  # reused, not restarted
    assert {svc.name: svc.status().pid for svc, _ in embedded_services(settings) if svc.status()} == pids

    assert sorted(services_down(settings)) == ["mongod", "redis"]
    assert all(svc.status() is None for svc, _ in embedded_services(settings))
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        pymongo.MongoClient(endpoints["SCBDA_MONGO_URI"], serverSelectionTimeoutMS=500).admin.command("ping")
    assert services_down(settings) == []  # nothing left to stop


def test_port_taken_is_one_clear_line(own_home):
    settings = Settings.from_env(own_home)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.redis_port))
        squatter.listen()
        with pytest.raises(ServiceError) as err:
            EmbeddedRedis(settings).ensure()
    message = str(err.value)
    assert "\n" not in message
    assert f"port {settings.redis_port}" in message and "SCBDA_REDIS_PORT" in message


def test_explicit_uri_wins_and_starts_nothing(own_home):
    env = {**own_home, "SCBDA_MONGO_URI": "mongodb://db.example:27017", "SCBDA_REDIS_URL": "redis://cache:6379/0"}
    settings = Settings.from_env(env)
    assert embedded_services(settings) == []
    assert resolve_endpoints(settings)["SCBDA_MONGO_URI"] == "mongodb://db.example:27017"
    assert services_up(settings)[1] == []


def test_stale_state_file_is_not_trusted(own_home):
    """A state file naming a PID that is not our server (crash, reboot, PID reuse) never gets that PID signalled."""
    settings = Settings.from_env(own_home)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        mongo = EmbeddedMongo(settings)
        mongo.process.record(sleeper.pid, settings.mongo_port, mongo.url())
        assert mongo.status() is None
        assert mongo.stop() is False
        assert sleeper.poll() is None  # not ours to stop
    finally:
        sleeper.kill()


def test_cli_services_up_prints_shell_settings(own_home, monkeypatch):
    from click.testing import CliRunner

    from scbda_assets.cli import main

    result = CliRunner().invoke(main, ["services", "up"], env=own_home)
    assert result.exit_code == 0, result.output
    lines = dict(shlex.split(line)[0].split("=", 1) for line in result.output.strip().splitlines())
    # Shell-evaluable settings with the passwords the clients need; `status` shows them redacted.
    assert lines["SCBDA_MONGO_URI"].startswith("mongodb://scbda:") and "@127.0.0.1:" in lines["SCBDA_MONGO_URI"]
    assert lines["SCBDA_REDIS_URL"].startswith("redis://:") and "@127.0.0.1:" in lines["SCBDA_REDIS_URL"]
    assert pymongo.MongoClient(lines["SCBDA_MONGO_URI"], serverSelectionTimeoutMS=3000).list_database_names()
    status = CliRunner().invoke(main, ["services", "status"], env=own_home)
    assert "mongod: running pid=" in status.output and "redis: running pid=" in status.output
    assert ":***@127.0.0.1:" in status.output and lines["SCBDA_REDIS_URL"].split("@")[0][10:] not in status.output
    down = CliRunner().invoke(main, ["services", "down"], env=own_home)
    assert "mongod" in down.output and "redis" in down.output


def test_a_resource_without_uri_starts_nothing_and_says_how_to_start(own_home, monkeypatch):
    """Resources only connect: an empty URI means the embedded server the launcher started, never one started here."""
    import dagster as dg

    from scbda_assets.errors import ServiceUnavailable
    from scbda_assets.resources import MongoResource, RedisResource

    for key in [k for k in __import__("os").environ if k.startswith("SCBDA_")]:
        monkeypatch.delenv(key)
    for key, value in own_home.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(own_home)
    for resource, variable in ((MongoResource(home=own_home["SCBDA_HOME"]), "SCBDA_MONGO_URI"),
                               (RedisResource(home=own_home["SCBDA_HOME"]), "SCBDA_REDIS_URL")):
        with pytest.raises(ServiceUnavailable) as err:
            resource.client()
        assert isinstance(err.value, dg.Failure) and err.value.allow_retries  # a run fails with this one line
        message = str(err.value)
        assert "\n" not in message and variable in message and "`scbda services up`" in message
    assert all(service.status() is None for service, _ in embedded_services(settings))  # nothing was started

    endpoints, _ = services_up(settings)  # what the launcher does; the resources then find the running servers
    mongo = MongoResource(home=own_home["SCBDA_HOME"])
    assert mongo.resolved_uri() == endpoints["SCBDA_MONGO_URI"] and mongo.database().command("ping")["ok"] == 1.0
    cache = RedisResource(home=own_home["SCBDA_HOME"])
    assert cache.client().ping()
    mongo.teardown_after_execution(None)
    cache.teardown_after_execution(None)
