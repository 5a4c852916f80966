"""Thin Dagster resources for MongoDB, Redis and Spark, built from one validated Settings. Resources only connect.

``uri``/``url`` left empty means "the embedded server under $SCBDA_HOME", which the launcher (`scbda run`,
`scbda services up`) has started: nothing is started from inside a run. Connection failures become one clear line
naming the address tried (``failures.ServiceFailure``, a ``dg.Failure`` that is also the plain
:class:`~scbda_assets.errors.ServiceUnavailable`), never a wall of driver tracebacks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pymongo
import redis
from dagster_pyspark import LazyPySparkResource
from pydantic import PrivateAttr
from pymongo.database import Database

from scbda_assets.clients import mongo_client, redis_client
from scbda_assets.errors import ServiceUnavailable
from scbda_assets.failures import as_failure
from scbda_assets.settings import Settings


def _embedded_endpoint(home: str, variable: str) -> str:
    """The running embedded server's URI; never starts one (one line saying how to, when none runs)."""
    from scbda_assets.services import running_endpoint

    settings = Settings.from_env({**_scbda_environ(), "SCBDA_HOME": home})
    try:
        return running_endpoint(settings, variable)
    except ServiceUnavailable as exc:
        raise as_failure(exc) from None


def _scbda_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("SCBDA_")}


class MongoResource(dg.ConfigurableResource):
    """The hot store. ``database()`` returns a pymongo Database; the client is made once per process."""

    uri: str = ""
    database_name: str = "supply_chain"
    home: str = ".scbda"
    timeout_ms: int = 5000

    _client: Any = PrivateAttr(default=None)

    def resolved_uri(self) -> str:
        return self.uri or _embedded_endpoint(self.home, "SCBDA_MONGO_URI")

    def client(self) -> pymongo.MongoClient:
        if self._client is None:
            try:
                self._client = mongo_client(self.resolved_uri(), self.timeout_ms)
            except ServiceUnavailable as exc:
                raise as_failure(exc) from None
        return self._client

    def database(self) -> Database:
        return self.client()[self.database_name]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisResource(dg.ConfigurableResource):
    """The KPI cache. Keys go through ``key()`` so several deployments can share one Redis."""

    url: str = ""
    key_prefix: str = ""
    home: str = ".scbda"
    timeout_s: float = 5.0

    _client: Any = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.url or _embedded_endpoint(self.home, "SCBDA_REDIS_URL")

    def client(self) -> redis.Redis:
        if self._client is None:
            try:
                self._client = redis_client(self.resolved_url(), self.timeout_s)
            except ServiceUnavailable as exc:
                raise as_failure(exc) from None
        return self._client

    def key(self, name: str) -> str:
        return f"{self.key_prefix}{name}"

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def spark_config(settings: Settings) -> dict[str, str]:
    """Session config for dagster-pyspark: Spark Connect when a server is configured or running, else local[2]."""
    from scbda_assets.services import resolve_endpoints
    from scbda_assets.services.java import java_home
    from scbda_assets.services.spark import SPARK_CONF

    remote = resolve_endpoints(settings)["SCBDA_SPARK_REMOTE"]
    if remote != "local":
        return {"spark.remote": remote}
    os.environ.setdefault("JAVA_HOME", java_home())
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind the in-process driver to loopback only
    return {"spark.master": "local[2]", "spark.app.name": "scbda", **SPARK_CONF}


# Settings that may carry a password (mongodb://user:pw@..., redis://:pw@...): passed as dg.EnvVar when they come from
# the environment, so the UI shows the variable's name, never the resolved value.
SECRET_VARIABLES = ("SCBDA_MONGO_URI", "SCBDA_REDIS_URL")


def _secret(variable: str, value: str | None, from_env: bool) -> str:
    if value and from_env and os.environ.get(variable) == value:
        return dg.EnvVar(variable)
    return value or ""


def build_resources(settings: Settings, *, secrets_from_env: bool = False) -> dict[str, dg.ConfigurableResource]:
    """The resources every definition uses, for one configuration (tests pass their own Settings).

    ``secrets_from_env`` (the code location's Definitions): a URI that is the value of its SCBDA_* variable is
    configured as ``dg.EnvVar``, which Dagster resolves when a run or sensor starts. Code outside Dagster (the CLI,
    ``open_resources``) uses the resolved values.
    """
    mongo_uri = _secret("SCBDA_MONGO_URI", settings.mongo_uri, secrets_from_env)
    redis_url = _secret("SCBDA_REDIS_URL", settings.redis_url, secrets_from_env)
    return {
        "mongo": MongoResource(uri=mongo_uri, database_name=settings.mongo_db, home=str(settings.home)),
        "redis": RedisResource(url=redis_url, key_prefix=settings.key_prefix, home=str(settings.home)),
        "pyspark": SparkResource(spark_config=spark_config(settings)),
        "settings": SettingsResource.from_settings(settings, mongo_uri=mongo_uri, redis_url=redis_url),
    }


class SparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy session, released when the run (or CLI command) that opened it ends.

    Against Spark Connect each session holds state in the server's heap until it is stopped or idles out, and a
    run a minute piles them up (the 30-minute soak ran the server out of memory). So a remote session is created
    for this resource alone (``create()``: ``getOrCreate()`` would hand back, and teardown would then stop, a
    session others in the process share) and stopped at teardown. A local session is the process's one JVM and
    is left running.
    """

    def _init_session(self) -> None:
        remote = self.spark_config.get("spark.remote")
        if self._spark_session is None and remote:
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            self._spark_session = ConnectSession.builder.remote(remote).create()
        super()._init_session()

    def teardown_after_execution(self, context: dg.InitResourceContext | None) -> None:
        if self._spark_session is not None and self.spark_config.get("spark.remote"):
            try:
                self._spark_session.stop()
            except Exception:  # noqa: BLE001 - a server already gone has nothing left to release
                pass
            self._spark_session = None


class SettingsResource(dg.ConfigurableResource):
    """The validated SCBDA_* settings, as a resource so assets, sensors and schedules read one configuration.

    The URIs that may hold a password are fields of their own (``dg.EnvVar`` in the code location), not part of
    ``environment``, which the UI shows as it is.
    """

    environment: dict[str, str]
    mongo_uri: str = ""
    redis_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, mongo_uri: str | None = None,
                      redis_url: str | None = None) -> SettingsResource:
        environment = {k: v for k, v in settings.to_env().items() if k not in SECRET_VARIABLES}
        return cls(environment=environment,
                   mongo_uri=(settings.mongo_uri or "") if mongo_uri is None else mongo_uri,
                   redis_url=(settings.redis_url or "") if redis_url is None else redis_url)

    def get(self) -> Settings:
        secrets = {"SCBDA_MONGO_URI": self.mongo_uri, "SCBDA_REDIS_URL": self.redis_url}
        return Settings.from_env({**self.environment, **{k: v for k, v in secrets.items() if v}})


@contextlib.contextmanager
def open_resources(settings: Settings) -> Iterator[dict[str, dg.ConfigurableResource]]:
    """The resources of ``build_resources`` for code outside a Dagster run (the CLI): every client and Spark session
    they opened is released on exit, even when the command fails."""
    resources = build_resources(settings)
    try:
        yield resources
    finally:
        for name in ("pyspark", "redis", "mongo"):
            resources[name].teardown_after_execution(None)
