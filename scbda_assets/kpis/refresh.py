"""The one KPI refresh code path: compute (MongoDB pushdown + Spark SQL), then publish to Redis atomically.

The KPI multi-asset and `scbda kpis` (``refresh_kpis_once``) both call ``run_refresh``. Expected failures — a
store or Spark that cannot be reached — become :class:`ServiceUnavailable` (one line naming the address); since
Redis is written only after everything was computed, a failed run leaves the previous snapshot untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlparse

import pymongo.errors
import redis
from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import maintain
from scbda_assets.contract import DAILY_HISTORY_KEY as DAILY_KEY
from scbda_assets.history.daily import daily_history
from scbda_assets.kpis.compute import (
    DEFAULT_SUPPLIER_WINDOW_DAYS,
    KPI_NAMES,
    KpiRun,
    compute_kpis,
    headline_numbers,
    iso,
    raw_order_sums,
)
from scbda_assets.kpis.publish import publish_snapshot
from scbda_assets.errors import ServiceUnavailable, first_line
from scbda_assets.settings import ConfigError, Settings, redact
from scbda_assets.timeutil import parse_iso, utc

# Spark Connect's default client retries an unreachable server for ~10 minutes; a minute schedule wants to fail
# fast and let the next tick try again.
SPARK_CONNECT_RETRIES = 4
SPARK_CONNECT_MAX_BACKOFF_MS = 2000


def iso_or_str(value) -> str:
    return iso(value) if isinstance(value, dt.datetime) else str(value)


def wall_clock() -> dt.datetime:
    """The one wall-clock read of the KPI code; entry points (asset, CLI, bench) pass it down as ``clock``/``now``."""
    return dt.datetime.now(dt.UTC)


# A scheduled run waits this long for the generator to commit the minute before T, then covers what is committed.
CLOCK_WAIT_SECONDS = 5.0
# An as-of older than this (by the wall clock) is "in the past": its payloads are printed, never published.
PAST_AS_OF = dt.timedelta(minutes=5)
# A later as-of than this is refused (a schedule tick is never ahead of the clock; this only absorbs small skew).
FUTURE_AS_OF = dt.timedelta(minutes=1)
GENERATOR_STATE = ("generator_state", "simulation")  # scbda_assets.generator.store: STATE_COLLECTION, STATE_ID


def generator_clock(db: Database) -> dt.datetime | None:
    """The generator's committed clock: every event before it is written (None: no generator has run)."""
    collection, key = GENERATOR_STATE
    doc = db[collection].find_one({"_id": key}, {"as_of": 1})
    value = doc.get("as_of") if doc else None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def wait_for_data(db: Database, as_of: dt.datetime, *, timeout_s: float = CLOCK_WAIT_SECONDS,
                  sleep: Callable[[float], None] = time.sleep) -> dt.datetime:
    """``data_until`` = min(T, the generator's committed clock), after waiting (bounded) for the clock to reach T,
    so a KPI never reads a minute the generator is still writing. No generator state: T."""
    deadline = time.monotonic() + timeout_s
    while True:
        clock = generator_clock(db)
        if clock is None or clock >= as_of:
            return as_of
        if time.monotonic() >= deadline:
            return clock
        sleep(0.25)


def is_past(as_of: dt.datetime, now: dt.datetime) -> bool:
    return as_of < now - PAST_AS_OF


def is_session_closed(error: BaseException) -> bool:
    """A Spark Connect session the server closed (idle timeout, restart) or that was stopped."""
    text = f"{type(error).__name__}: {error}"
    markers = ("SESSION_CLOSED", "INVALID_HANDLE", "SESSION_NOT_FOUND", "NO_ACTIVE_SESSION", "closed channel",
               "Cannot invoke RPC")
    return any(marker in text for marker in markers)


class SparkHandle:
    """A Spark session opened at first use and reopened once when Spark Connect says it is closed
    (INVALID_HANDLE.SESSION_CLOSED: the server ends sessions idle for 5 minutes). ``close`` stops the sessions this
    handle opened itself (a session passed in belongs to its owner)."""

    def __init__(self, open_session: Callable[[], object], session=None):
        self._open, self._session, self._owned, self.reopened = open_session, session, [], 0

    def get(self):
        if self._session is None:
            self._session = self._open()
            self._owned.append(self._session)
        return self._session

    def reopen(self):
        self._session = None
        self.reopened += 1
        return self.get()

    def run(self, action: Callable[[object], object]):
        try:
            return action(self.get())
        except Exception as error:  # noqa: BLE001 - only a closed session is retried, anything else re-raised
            if not is_session_closed(error):
                raise
            return action(self.reopen())

    def close(self) -> None:
        for session in self._owned:
            try:
                session.stop()
            except Exception:  # noqa: BLE001 - a session already gone has nothing left to release
                pass
        self._owned.clear()
        self._session = None


@dataclasses.dataclass(frozen=True)
class RefreshOutcome:
    run: KpiRun
    headline: dict[str, float | int | None]
    seconds: float  # compute + publish
    completed_at: dt.datetime
    written_keys: tuple[str, ...]
    daily: dict | None = None  # the history:daily payload
    published: bool = True
    live_as_of: dt.datetime | None = None  # the as-of of the live snapshot after this run (publishing runs)
    not_published: str | None = None  # why the live keys were not written (a past as-of, or a newer one is live)

    def payloads(self) -> dict[str, dict]:
        """Every value the run computed, by Redis key name (what a past as-of prints instead of writing)."""
        values = {f"kpi:{name}": result.payload() for name, result in self.run.results.items()}
        if self.daily is not None:
            values[DAILY_KEY] = self.daily
        return values

    def summary(self) -> dict:
        """JSON-able summary (the CLI prints it)."""
        results = self.run.results
        return {
            "as_of": iso(self.run.as_of),
            "data_until": iso(self.run.data_until or self.run.as_of),
            "completed_at": iso(self.completed_at),
            "seconds": round(self.seconds, 3),
            "mongo_seconds": round(self.run.mongo_seconds, 3),
            "spark_seconds": round(self.run.spark_seconds, 3),
            "orders_from": self.run.orders_from,
            "kpis": {name: {"rows": len(r.rows), "window_minutes": r.window_minutes} for name, r in results.items()},
            "headline": self.headline,
            "redis_keys": list(self.written_keys),
            "history": json.loads(json.dumps({k: v for k, v in self.run.history.items() if k != "raw_order_sums"},
                                             default=iso_or_str)),
        }


def parse_as_of(value: str | dt.datetime | None, *, now: dt.datetime) -> dt.datetime:
    """As-of time T: an ISO 8601 string or datetime (no offset = UTC), default ``now``. A future T is refused
    (SPEC §10: its windows would be empty and look fresh, and the live snapshot would jump ahead)."""
    if value is None or value == "":
        return now
    if isinstance(value, str):
        try:
            moment = parse_iso(value)
        except ValueError:
            raise ConfigError(f"as_of={value!r} is not a time: expected ISO 8601, e.g. 2026-11-22T10:00:00Z") from None
    else:
        moment = utc(value)
    if moment > now + FUTURE_AS_OF:
        raise ConfigError(f"as-of {iso(moment)} is in the future: expected a time up to now ({iso(now)}); "
                          f"nothing was computed or written")
    return moment


def decision_settings(settings) -> dict:
    """What the stockout risk takes from the settings: the probability thresholds and the Ramadan date ranges."""
    from scbda_assets.domain.demand import ramadan_ranges

    return {"thresholds": settings.stockout_thresholds(), "ramadan": ramadan_ranges(settings.ramadan)}


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
    archive: ArchiveStore | None = None,
    data_until: dt.datetime | None = None,
    supplier_window_days: int = DEFAULT_SUPPLIER_WINDOW_DAYS,
    publish: bool = True,
    decision_settings: dict | None = None,
) -> RefreshOutcome:
    """Compute, then (``publish``) write Redis in one transaction: the KPI keys and ``history:daily``.

    ``clock`` gives the wall time (rollup and history sealing, completion stamp); a fixed-date caller returns T
    from it. ``spark``: a session, or a :class:`SparkHandle` (reopened once if Spark Connect closed it).
    ``publish=False`` (a past as-of) computes the same payloads and writes nothing; a publish whose as-of is not
    newer than the live snapshot's writes nothing either (``outcome.not_published`` says why).
    ``decision_settings``: the stockout thresholds and Ramadan ranges (``decision_settings(settings)``)."""
    started = time.perf_counter()
    handle = spark if isinstance(spark, SparkHandle) else SparkHandle(lambda: spark, session=spark)
    with service_errors(db=db, redis_client=redis_client):
        run = handle.run(lambda session: compute_kpis(
            db, session, as_of, names, now=clock(), archive=archive, data_until=data_until, orders_from=orders_from,
            supplier_window_days=supplier_window_days, **(decision_settings or {})))
        end = run.data_until or as_of
        if "refresh" not in run.history:  # a subset without history inputs: history:daily still reads a fresh layer
            run.history["refresh"] = maintain.refresh(db, archive, now=clock())
        raw = run.history.get("raw_order_sums") or raw_order_sums(db, archive, None)
        daily = daily_history(db, archive, as_of=as_of, data_until=end, raw_sums=raw)
        headline = headline_numbers(run.results)
        completed_at = clock()
        written, live, reason = {}, None, None if publish else "as-of in the past: the live keys are never written"
        if publish:
            published = publish_snapshot(redis_client, run.results, headline, as_of=as_of, ttl_seconds=ttl_seconds,
                                         key=key, completed_at=completed_at, extra={DAILY_KEY: daily})
            written, live = published.written, published.live_as_of
            if not published.ok:
                reason = f"a newer snapshot is live (as-of {iso(live)}): the live snapshot only moves forward"
    return RefreshOutcome(run, headline, time.perf_counter() - started, completed_at, tuple(written), daily=daily,
                          published=bool(written), live_as_of=live, not_published=reason)


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
    """`scbda kpis`: compute the five KPIs at ``as_of`` (default now), write Redis, return a JSON-able summary.
    A future as-of is refused (ConfigError). An as-of in the past (older than ``PAST_AS_OF``), or not newer than the
    live snapshot's, writes nothing: the summary then carries every payload and ``not_published``."""
    from scbda_assets.resources import open_resources

    now = clock()
    moment = parse_as_of(as_of, now=now)
    live = not is_past(moment, now)
    handle = None
    with open_resources(settings) as resources:
        mongo, cache, pyspark = resources["mongo"], resources["redis"], resources["pyspark"]
        try:
            # The stores first: a ping costs milliseconds, a Spark session seconds (and a local JVM).
            db, redis_client = mongo.database(), cache.client()
            handle = SparkHandle(lambda: open_spark(pyspark.spark_config, lambda: pyspark.spark_session))
            handle.get()
            data_until = wait_for_data(db, moment) if live and as_of is None else None
            outcome = run_refresh(db=db, spark=handle, redis_client=redis_client, as_of=moment,
                                  ttl_seconds=settings.kpi_ttl_seconds, key=cache.key, clock=clock,
                                  archive=ArchiveStore(settings.archive_uri), data_until=data_until,
                                  supplier_window_days=settings.supplier_window_days, publish=live,
                                  decision_settings=decision_settings(settings))
        finally:
            if handle is not None and handle.reopened:
                handle.close()
    summary = outcome.summary()
    summary["published"] = outcome.published
    if not outcome.published:
        summary["not_published"] = outcome.not_published
        summary["payloads"] = outcome.payloads()
    return summary

