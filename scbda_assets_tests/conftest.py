"""Real services for the suite: mongod, redis-server and a Spark Connect server, started by our own embedded-service
code in a temporary $SCBDA_HOME on free ports, and stopped at the end of the session even when tests fail.

Spark starts only when a test asks for it. Each test gets its own MongoDB database and a clean Redis db.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator

import pytest

from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark
from scbda_assets.settings import Settings

_counter = itertools.count()


@pytest.fixture(scope="session")
def services_home(tmp_path_factory) -> Iterator:
    return tmp_path_factory.mktemp("scbda_home")


@pytest.fixture(scope="session")
def base_env(services_home) -> dict[str, str]:
    """SCBDA_* variables for an isolated embedded stack on free ports (nothing shared with `make run`)."""
    return {
        "SCBDA_HOME": str(services_home),
        "SCBDA_MONGO_PORT": str(free_port()),
        "SCBDA_REDIS_PORT": str(free_port()),
        "SCBDA_SPARK_PORT": str(free_port()),
    }


def _serve(service_cls, env: dict[str, str]) -> Iterator[str]:
    """Start one embedded server for the session; stop it afterwards, even when tests failed."""
    service = service_cls(Settings.from_env(env))
    running, _ = service.ensure()
    try:
        yield running.url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def mongo_server(base_env) -> Iterator[str]:
    yield from _serve(EmbeddedMongo, base_env)


@pytest.fixture(scope="session")
def redis_server(base_env) -> Iterator[str]:
    yield from _serve(EmbeddedRedis, base_env)


@pytest.fixture(scope="session")
def spark_server(base_env) -> Iterator[str]:
    yield from _serve(EmbeddedSpark, base_env)


@pytest.fixture(scope="session")
def _spark_sessions(spark_server) -> Iterator[list]:
    """The suite's Spark Connect sessions (the newest last); all stopped at the end."""
    sessions: list = []
    yield sessions
    for session in sessions:
        try:
            session.stop()
        except Exception:  # noqa: BLE001 - a session the server already closed
            pass


@pytest.fixture
def spark(spark_server, _spark_sessions):
    """A live Spark Connect session on the suite's own server. The server closes sessions idle for 5 minutes
    (INVALID_HANDLE.SESSION_CLOSED), and slow tests in between take longer: a closed session is replaced."""
    from pyspark.sql import SparkSession

    from scbda_assets.kpis.refresh import is_session_closed

    if _spark_sessions:
        try:
            _spark_sessions[-1].sql("SELECT 1").collect()
            return _spark_sessions[-1]
        except Exception as error:  # noqa: BLE001
            if not is_session_closed(error):
                raise
    # A new session id: getOrCreate would hand back the closed session's cached client.
    session = SparkSession.builder.remote(spark_server).create()
    _spark_sessions.append(session)
    return session


@pytest.fixture
def test_env(base_env, mongo_server, redis_server, tmp_path) -> dict[str, str]:
    """Environment for one test: explicit URIs (so nothing else is started), a fresh database and archive folder."""
    return {
        **base_env,
        "SCBDA_MONGO_URI": mongo_server,
        "SCBDA_MONGO_DB": f"test_{next(_counter)}_{uuid.uuid4().hex[:6]}",
        "SCBDA_REDIS_URL": redis_server,
        "SCBDA_SPARK_REMOTE": "local",
        "SCBDA_ARCHIVE_URI": (tmp_path / "archive").as_uri(),
    }


@pytest.fixture
def settings(test_env) -> Settings:
    return Settings.from_env(test_env)


@pytest.fixture
def spark_settings(test_env, spark_server) -> Settings:
    """Settings whose Spark is the suite's Connect server."""
    return Settings.from_env({**test_env, "SCBDA_SPARK_REMOTE": spark_server})


@pytest.fixture
def mongo_db(settings):
    import pymongo

    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    db = client[settings.mongo_db]
    yield db
    client.drop_database(settings.mongo_db)
    client.close()


@pytest.fixture
def redis_client(settings):
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def scbda_environ(test_env, monkeypatch):
    """Put the test's SCBDA_* variables in os.environ (for code that reads the environment, like the CLI)."""
    for key in [k for k in os.environ if k.startswith("SCBDA_")]:
        monkeypatch.delenv(key)
    for key, value in test_env.items():
        monkeypatch.setenv(key, value)
    return test_env


# Markers by fixture use, so `make test-fast` (-m "not spark and not browser ...") needs no bookkeeping in the tests.
SPARK_FIXTURES = frozenset({"spark_server", "spark", "spark_settings", "_spark_sessions", "live_cluster"})
BROWSER_FIXTURES = frozenset({"chromium_path", "pages", "browser_page"})
HDFS_FIXTURES = frozenset({"live_hdfs"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SPARK_FIXTURES:
            item.add_marker(pytest.mark.spark)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & HDFS_FIXTURES:
            item.add_marker(pytest.mark.hdfs)
