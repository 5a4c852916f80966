"""The one KPI refresh code path: compute (MongoDB pushdown + Spark SQL), then publish to Redis atomically.

The KPI multi-asset and `scbda kpis` (``refresh_kpis_once``) both call ``run_refresh``. Expected failures — a
store or Spark that cannot be reached — become :class:`ServiceUnavailable` (one line naming the address); since
Redis is written only after everything was computed, a failed run leaves the previous snapshot untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Callable
from urllib.parse import urlparse

import pymongo.errors
import redis
from pymongo.database import Database

from scbda_assets.kpis.compute import KPI_NAMES, KpiRun, compute_kpis, headline_numbers, iso
from scbda_assets.kpis.publish import publish_snapshot
from scbda_assets.resources import ServiceUnavailable, first_line
from scbda_assets.settings import ConfigError, Settings, redact

# Spark Connect's default client retries an unreachable server for ~10 minutes; a minute schedule wants to fail
# fast and let the next tick try again.
SPARK_CONNECT_RETRIES = 4
SPARK_CONNECT_MAX_BACKOFF_MS = 2000


def wall_clock() -> dt.datetime:
    """The one wall-clock read of the KPI code; entry points (asset, CLI, bench) pass it down as ``clock``/``now``."""
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class RefreshOutcome:
    run: KpiRun
    headline: dict[str, float | int | None]
    seconds: float  # compute + publish
    completed_at: dt.datetime
    written_keys: tuple[str, ...]

    def summary(self) -> dict:
        """JSON-able summary (the CLI prints it)."""
        results = self.run.results
        return {
            "as_of": iso(self.run.as_of),
            "completed_at": iso(self.completed_at),
            "seconds": round(self.seconds, 3),
            "mongo_seconds": round(self.run.mongo_seconds, 3),
            "spark_seconds": round(self.run.spark_seconds, 3),
            "orders_from": self.run.orders_from,
            "kpis": {name: {"rows": len(r.rows), "window_minutes": r.window_minutes} for name, r in results.items()},
            "headline": self.headline,
            "redis_keys": list(self.written_keys),
        }


def parse_as_of(value: str | dt.datetime | None, *, now: dt.datetime) -> dt.datetime:
    """As-of time T: an ISO 8601 string or datetime (no offset = UTC), default ``now``."""
    if value is None or value == "":
        return now
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"as_of={value!r} is not a time: expected ISO 8601, e.g. 2026-11-22T10:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run_refresh(
    *,
    db: Database,
    spark,
    redis_client: redis.Redis,
    as_of: dt.datetime,
    ttl_seconds: int,
    names: tuple[str, ...] = KPI_NAMES,
    key: Callable[[str], str] = lambda name: name,
    orders_from: str = "rollup",
    clock: Callable[[], dt.datetime],
) -> RefreshOutcome:
    """``clock`` gives the wall time (rollup sealing, completion stamp); a fixed-date caller returns T from it."""
    started = time.perf_counter()
    with service_errors(db=db, redis_client=redis_client):
        run = compute_kpis(db, spark, as_of, names, now=clock(), orders_from=orders_from)
        headline = headline_numbers(run.results)
        completed_at = clock()
        written = publish_snapshot(redis_client, run.results, headline, as_of=as_of, ttl_seconds=ttl_seconds,
                                   key=key, completed_at=completed_at)
    return RefreshOutcome(run, headline, time.perf_counter() - started, completed_at, tuple(written))


class service_errors:
    """Turn connection failures of MongoDB, Redis or Spark Connect into one-line ServiceUnavailable errors."""

    def __init__(self, *, db: Database, redis_client: redis.Redis):
        self.db = db
        self.redis_client = redis_client

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None:
            return False
        if isinstance(error, pymongo.errors.ConnectionFailure):
            address = ",".join(f"{h}:{p}" for h, p in self.db.client.topology_description.server_descriptions())
            raise ServiceUnavailable(f"MongoDB unreachable at {address}: {first_line(error)}") from None
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            kwargs = self.redis_client.connection_pool.connection_kwargs
            address = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            raise ServiceUnavailable(f"Redis unreachable at {address}: {first_line(error)}") from None
        if _is_spark_unavailable(error):
            raise ServiceUnavailable(f"Spark Connect unreachable: {first_line(error)}") from None
        return False


def _is_spark_unavailable(error: BaseException) -> bool:
    try:
        from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    except ImportError:  # pragma: no cover - pyspark without the connect extra
        return False
    if isinstance(error, SparkConnectGrpcException):
        text = str(error)
        return "UNAVAILABLE" in text or "Connection refused" in text or "failed to connect" in text.lower()
    import grpc

    return isinstance(error, grpc.RpcError) and getattr(error, "code", lambda: None)() == grpc.StatusCode.UNAVAILABLE


def open_spark(spark_config: dict, session_factory: Callable[[], object]):
    """The Spark session of the run. With Spark Connect, check the server answers first (fail fast with the address
    tried) and bound the client's retries."""
    remote = spark_config.get("spark.remote")
    if remote:
        parsed = urlparse(remote)
        try:
            socket.create_connection((parsed.hostname, parsed.port), timeout=3).close()
        except OSError as exc:
            raise ServiceUnavailable(f"Spark Connect unreachable at {redact(remote)}: {exc}") from None
    session = session_factory()
    if remote:
        from pyspark.sql.connect.client.retries import DefaultPolicy

        session.client.set_retry_policies(
            [DefaultPolicy(max_retries=SPARK_CONNECT_RETRIES, max_backoff=SPARK_CONNECT_MAX_BACKOFF_MS)]
        )
    return session


def refresh_kpis_once(settings: Settings, *, as_of: dt.datetime | str | None,
                      clock: Callable[[], dt.datetime] = wall_clock) -> dict:
    """`scbda kpis`: compute the five KPIs at ``as_of`` (default now), write Redis, return a JSON-able summary."""
    from scbda_assets.resources import build_resources

    moment = parse_as_of(as_of, now=clock())
    resources = build_resources(settings)
    mongo, cache, pyspark = resources["mongo"], resources["redis"], resources["pyspark"]
    try:
        # The stores first: a ping costs milliseconds, a Spark session seconds (and a local JVM).
        db, redis_client = mongo.database(), cache.client()
        spark = open_spark(pyspark.spark_config, lambda: pyspark.spark_session)
        outcome = run_refresh(db=db, spark=spark, redis_client=redis_client, as_of=moment,
                              ttl_seconds=settings.kpi_ttl_seconds, key=cache.key, clock=clock)
    finally:
        for resource in (mongo, cache, pyspark):
            resource.teardown_after_execution(None)
    return outcome.summary()

