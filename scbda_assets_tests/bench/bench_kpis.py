"""KPI refresh benchmark (SPEC §13): tick → all five KPIs in Redis, p50/p95 at 1x and 100x the default rate, and
the per-run cost of a fresh process on the warm Spark Connect server against a cold local Spark session.

Each rate gets its own database, filled by the generator's backfill (2 hours by default, ending at the current
minute, so the KPI windows hold live-like data). Timed runs use the same code path as the asset and the CLI
(``run_refresh``); the fresh-process runs call ``scbda kpis``. Set SCBDA_BENCH_KPI_MINUTES / _RUNS to shorten.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import time

import pymongo
import redis

from scbda_assets.kpis.compute import KPI_NAMES
from scbda_assets.kpis.refresh import open_spark, run_refresh
from scbda_assets.resources import spark_config
from scbda_assets.settings import Settings

RATES = {"1x": 1500.0, "100x": 150000.0}
TARGET_P95 = {"1x": 5.0, "100x": 8.0}
BACKFILL_MINUTES = int(os.environ.get("SCBDA_BENCH_KPI_MINUTES", "120"))
TIMED_RUNS = int(os.environ.get("SCBDA_BENCH_KPI_RUNS", "12"))
PROCESS_RUNS = int(os.environ.get("SCBDA_BENCH_KPI_PROCESS_RUNS", "3"))
SEED = 7


def run(ctx) -> list[dict]:
    base: Settings = ctx["settings"]
    rows: list[dict] = []
    for label, rate in RATES.items():
        settings = Settings.from_env({**base.to_env(), "SCBDA_MONGO_DB": f"bench_kpis_{label}",
                                      "SCBDA_EVENTS_PER_MINUTE": str(rate)})
        try:
            rows += _bench_rate(settings, label, rate)
        finally:
            pymongo.MongoClient(settings.mongo_uri).drop_database(settings.mongo_db)
    return rows


def _row(metric, value, unit, target="", note="") -> dict:
    return {"benchmark": "kpis", "metric": metric, "value": value, "unit": unit, "target": target, "note": note}


def _bench_rate(settings: Settings, label: str, rate: float) -> list[dict]:
    from scbda_assets.generator.backfill import backfill

    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    _seed_dimensions(settings, rate)
    summary = backfill(settings, minutes=BACKFILL_MINUTES, rate=rate, end=end, seed=SEED, progress=False)
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    db = client[settings.mongo_db]
    cache = redis.Redis.from_url(settings.redis_url)
    config = spark_config(settings)
    from dagster_pyspark.resources import spark_session_from_config

    spark = open_spark(config, lambda: spark_session_from_config(config))
    orders_in_window = db.orders_fact.count_documents({"order_ts": {"$gte": end - dt.timedelta(minutes=15)}})

    def refresh(as_of):
        started = time.perf_counter()
        outcome = run_refresh(db=db, spark=spark, redis_client=cache, as_of=as_of,
                              ttl_seconds=settings.kpi_ttl_seconds, names=KPI_NAMES, key=settings.redis_key)
        assert cache.exists(*[settings.redis_key(f"kpi:{name}") for name in KPI_NAMES]) == len(KPI_NAMES)
        return time.perf_counter() - started, outcome

    for _ in range(3):  # warm-up: the first plans compile slowly on a fresh server (JIT)
        refresh(end)
    seconds, mongo, spark_s = [], [], []
    for i in range(TIMED_RUNS):
        elapsed, outcome = refresh(end - dt.timedelta(minutes=i % 3))
        seconds.append(elapsed)
        mongo.append(outcome.run.mongo_seconds)
        spark_s.append(outcome.run.spark_seconds)
    note = (f"{summary['total_events']} events backfilled over {BACKFILL_MINUTES} min; "
            f"{orders_in_window} orders in the 15-min window; {TIMED_RUNS} runs, warm process")
    rows = [
        _row(f"refresh_p50_{label}", round(statistics.median(seconds), 3), "s", "", note),
        _row(f"refresh_p95_{label}", round(_p95(seconds), 3), "s", f"<= {TARGET_P95[label]}", note),
        _row(f"mongo_pushdown_p50_{label}", round(statistics.median(mongo), 3), "s"),
        _row(f"spark_sql_p50_{label}", round(statistics.median(spark_s), 3), "s"),
        _row(f"backfill_events_per_s_{label}", summary["events_per_second"], "events/s"),
    ]
    if label == "1x":
        rows += _process_costs(settings, end)
    client.close()
    cache.close()
    return rows


def _process_costs(settings: Settings, as_of: dt.datetime) -> list[dict]:
    """`scbda kpis` in a new process per run: on the warm Connect server vs a cold local Spark session."""
    rows = []
    for mode, remote in (("connect_warm", settings.spark_remote), ("local_cold", "local")):
        # pyspark marks this process as Connect-mode in os.environ; the child decides for itself.
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith("SCBDA_") and k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE",
                                                                  "SPARK_LOCAL_REMOTE")}
        env = {**inherited,
               **settings.to_env(), "SCBDA_SPARK_REMOTE": remote}
        costs = []
        for _ in range(PROCESS_RUNS):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "scbda_assets.cli", "kpis", "--as-of", as_of.isoformat()],
                                  env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"scbda kpis ({mode}) failed: {done.stderr.strip()[-2000:]}")
            costs.append(time.perf_counter() - started)
        rows.append(_row(f"process_run_{mode}_p50", round(statistics.median(costs), 3), "s", "",
                         f"new process per run (imports + session + refresh), {PROCESS_RUNS} runs"))
    warm, cold = rows[0]["value"], rows[1]["value"]
    rows.append(_row("process_run_cold_over_warm", round(cold / warm, 2), "x"))
    return rows


def _seed_dimensions(settings: Settings, rate: float) -> None:
    """The dimension collections as the reference assets write them (calibrated to the rate when available)."""
    from scbda_assets.domain.reference import DIMENSIONS

    try:
        from scbda_assets.domain.calibration import dimension_documents as calibrated

        def documents(name):
            return calibrated(name, rate)
    except ImportError:
        from scbda_assets.domain.reference import dimension_documents as documents
    client = pymongo.MongoClient(settings.mongo_uri)
    db = client[settings.mongo_db]
    for name, (key, _) in DIMENSIONS.items():
        for doc in documents(name):
            db[name].replace_one({key: doc[key]}, doc, upsert=True)
    client.close()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
