"""Loopback is no boundary between the users of one machine (docs/operations.md "Security"):

- the state folder is 0700 and every file holding a secret 0600, also when the folder was made by someone else
  with the usual umask;
- embedded Redis and mongod require the password generated on their first start (kept in the state folder);
  the URIs the code hands out carry it, and no command line does;
- the Spark Connect server gets only the environment it needs (no SCBDA_* URI with a password, nothing unrelated).
"""

from __future__ import annotations

import os
import stat
import subprocess

import psutil
import pymongo
import pytest
import redis

from scbda_assets import launcher
from scbda_assets.services import spark as spark_module
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import ServiceError, free_port, port_open
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark
from scbda_assets.settings import Settings


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)  # what most shells have: new folders 0755, files 0644
    yield
    os.umask(previous)


def test_state_folder_is_private_and_secrets_are_0600(tmp_path, usual_umask):
    home = tmp_path / "home"
    home.mkdir()  # made by an older version (or by hand): world-readable
    assert _mode(home) == 0o755
    settings = Settings.from_env({"SCBDA_HOME": str(home), "SCBDA_REDIS_PORT": str(free_port())})
    service = EmbeddedRedis(settings)
    try:
        running, _ = service.ensure()
        assert _mode(home) == 0o700
        assert _mode(settings.services_dir) == 0o700
        assert ":" + (home / "redis" / "password").read_text().strip() + "@" in running.url
        for secret in (home / "redis" / "password", home / "redis" / "redis.conf", settings.services_dir / "redis.json"):
            assert _mode(secret) == 0o600, secret
    finally:
        service.stop()


def test_launcher_makes_a_new_state_folder_private(tmp_path, usual_umask):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path / "new" / "home")})
    launcher.prepare_dagster_home(settings)
    assert _mode(settings.home) == 0o700


def test_embedded_redis_requires_its_password_and_no_argv_carries_it(base_env, redis_server):
    port = Settings.from_env(base_env).redis_port
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()
    assert redis.Redis.from_url(redis_server).ping()
    password = redis.connection.parse_url(redis_server)["password"]
    assert len(password) >= 32
    pid = EmbeddedRedis(Settings.from_env(base_env)).status().pid
    assert password not in " ".join(psutil.Process(pid).cmdline())


def test_embedded_mongod_requires_its_password(base_env, mongo_server):
    settings = Settings.from_env(base_env)
    anonymous = f"mongodb://127.0.0.1:{settings.mongo_port}/?directConnection=true"
    with pymongo.MongoClient(anonymous, serverSelectionTimeoutMS=3000) as client:
        with pytest.raises(pymongo.errors.OperationFailure, match="requires authentication"):
            client.list_database_names()
    password = (settings.home / "mongod" / "password").read_text().strip()
    assert f":{password}@" in mongo_server and _mode(settings.home / "mongod" / "password") == 0o600
    with pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=3000) as client:
        assert "admin" in client.list_database_names()
    pid = EmbeddedMongo(settings).status().pid
    assert password not in " ".join(psutil.Process(pid).cmdline())


def test_spark_connect_server_gets_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SCBDA_MONGO_URI", "mongodb://app:s3cret@db:27017")
    monkeypatch.setenv("SCBDA_REDIS_URL", "redis://:s3cret@cache:6379/0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("SOME_UNRELATED_TOOL_TOKEN", "s3cret")
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/python3")
    monkeypatch.setenv("HADOOP_USER_NAME", "spark")
    service = EmbeddedSpark(Settings.from_env({"SCBDA_HOME": str(tmp_path / "home"), "SCBDA_SPARK_PORT": "15999"}))
    calls = []

    def run(argv, env=None, **kwargs):  # the launcher script, captured (nothing starts)
        calls.append(env)
        (service.dir / f"spark-{spark_module.IDENT}-{spark_module.SERVER_CLASS}-1.pid").write_text("999999\n")
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(spark_module, "java_home", lambda: "/opt/java")
    monkeypatch.setattr(spark_module.subprocess, "run", run)
    service.dir.mkdir(parents=True)
    service.launch()
    [env] = calls
    assert "s3cret" not in " ".join(env.values())
    assert not [key for key in env if key.startswith("SCBDA_")]
    assert env["PATH"] == os.environ["PATH"] and env["JAVA_HOME"] == "/opt/java"
    assert env["PYSPARK_PYTHON"] == "/usr/bin/python3" and env["HADOOP_USER_NAME"] == "spark"
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1" and env["SPARK_HOME"] == str(spark_module.spark_home())


def test_a_mongod_whose_users_are_not_ours_is_refused_with_one_line_and_left_stopped(tmp_path):
    """The password file lost (or another user's data folder): one line saying what to do, no server left running."""
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path / "home"), "SCBDA_MONGO_PORT": str(free_port())})
    service = EmbeddedMongo(settings)
    try:
        service.ensure()
        service.stop()
        service.password_file.unlink()
        with pytest.raises(ServiceError) as error:
            service.ensure()
        message = str(error.value)
        assert "\n" not in message and "does not accept the password" in message and "SCBDA_MONGO_URI" in message
        assert service.status() is None and not port_open(settings.mongo_port)
    finally:
        service.stop()


def test_a_data_folder_from_before_the_passwords_gets_our_user_and_keeps_its_data(tmp_path):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path / "home"), "SCBDA_MONGO_PORT": str(free_port())})
    before = EmbeddedMongo(settings)
    before.require_auth = False  # what older versions ran: no --auth, no user
    running, _ = before.ensure()
    with pymongo.MongoClient(running.url) as client:
        client["supply_chain"]["orders_fact"].insert_one({"order_id": "ORD-1"})
    before.stop()
    service = EmbeddedMongo(settings)
    try:
        running, started = service.ensure()
        assert started and f"scbda:{service.password_file.read_text().strip()}@" in running.url
        with pymongo.MongoClient(running.url) as client:
            assert client["supply_chain"]["orders_fact"].count_documents({"order_id": "ORD-1"}) == 1
    finally:
        service.stop()
