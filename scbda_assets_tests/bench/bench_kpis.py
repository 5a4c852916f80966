"""KPI refresh benchmark (SPEC §13): tick → all five KPIs in Redis, p50/p95 at 1x and 100x the default rate, and
the per-run cost of a fresh process on the warm Spark Connect server against a cold local Spark session.

Each rate gets its own database, filled by the generator's backfill (2 hours by default, ending at the current
minute, so the KPI windows hold live-like data). Timed runs use the same code path as the asset and the CLI
(``run_refresh``), once with the order sums from the minute rollup (the default) and once straight from
``orders_fact`` (the previous design), interleaved so both see the same load; the fresh-process runs call
``scbda kpis``. Set SCBDA_BENCH_KPI_MINUTES / _RUNS / _PROCESS_RUNS to shorten.
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

from scbda_assets.kpis import rollup
from scbda_assets.kpis.compute import KPI_NAMES
from scbda_assets.kpis.refresh import open_spark, run_refresh, wall_clock
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


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


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
    load_start = _load()

    def refresh(as_of, orders_from):
        started = time.perf_counter()
        outcome = run_refresh(db=db, spark=spark, redis_client=cache, as_of=as_of, orders_from=orders_from,
                              ttl_seconds=settings.kpi_ttl_seconds, names=KPI_NAMES, key=settings.redis_key,
                              clock=wall_clock)
        assert cache.exists(*[settings.redis_key(f"kpi:{name}") for name in KPI_NAMES]) == len(KPI_NAMES)
        assert outcome.run.orders_from == orders_from, outcome.run.orders_from
        return time.perf_counter() - started, outcome

    # Warm-up: the first plans compile slowly on a fresh server (JIT); the first rollup run folds the whole backfill.
    _, first = refresh(end, "rollup")
    initial_fold = first.run.input_seconds["orders_rollup_fold"]
    rollup_rows = db[rollup.ROLLUP].estimated_document_count()
    for mode in ("facts", "rollup", "facts"):
        refresh(end, mode)
    # Side by side, interleaved, so both modes see the same machine load.
    timings = {mode: {"total": [], "mongo": [], "spark": [], "orders": []} for mode in ("facts", "rollup")}
    for i in range(TIMED_RUNS):
        for mode in ("facts", "rollup") if i % 2 == 0 else ("rollup", "facts"):
            elapsed, outcome = refresh(end - dt.timedelta(minutes=i % 3), mode)
            timings[mode]["total"].append(elapsed)
            timings[mode]["mongo"].append(outcome.run.mongo_seconds)
            timings[mode]["spark"].append(outcome.run.spark_seconds)
            timings[mode]["orders"].append(outcome.run.input_seconds["orders/15m"])
    spark_one, spark_five = _spark_side_by_side(db, spark, end)
    folds = _live_minute_folds(db, end)
    note = (f"{summary['total_events']} events backfilled over {BACKFILL_MINUTES} min; "
            f"{orders_in_window} orders in the 15-min window; {TIMED_RUNS} runs per mode, interleaved, warm process; "
            f"load avg {load_start} -> {_load()}")
    rows = []
    for mode, suffix in (("rollup", ""), ("facts", "_direct")):
        series = timings[mode]
        rows += [
            _row(f"refresh_p50_{label}{suffix}", round(statistics.median(series["total"]), 3), "s", "", note),
            _row(f"refresh_p95_{label}{suffix}", round(_p95(series["total"]), 3), "s",
                 f"<= {TARGET_P95[label]}" if mode == "rollup" else "", f"orders from {mode}"),
            _row(f"mongo_pushdown_p50_{label}{suffix}", round(statistics.median(series["mongo"]), 3), "s"),
            _row(f"mongo_orders_query_p50_{label}{suffix}", round(statistics.median(series["orders"]), 3), "s"),
            _row(f"spark_sql_p50_{label}{suffix}", round(statistics.median(series["spark"]), 3), "s"),
        ]
    rows += [
        _row(f"spark_one_action_p50_{label}", round(statistics.median(spark_one), 3), "s", "",
             "the five queries as one action, 1 shuffle partition (now)"),
        _row(f"spark_five_actions_p50_{label}", round(statistics.median(spark_five), 3), "s", "",
             "the five queries as five concurrent actions with ORDER BY, session defaults (before)"),
        _row(f"rollup_initial_fold_{label}", round(initial_fold, 3), "s", "",
             f"first fold after the backfill (folds it all: {rollup_rows} rollup rows)"),
        _row(f"rollup_fold_new_minute_p50_{label}", round(statistics.median(folds), 3), "s", "",
             f"fold of one more minute of orders (~{int(rate)}/min), as each live KPI run does"),
        _row(f"backfill_events_per_s_{label}", summary["events_per_second"], "events/s"),
    ]
    if label == "1x":
        rows += _process_costs(settings, end)
    client.close()
    cache.close()
    return rows


# The ORDER BY each query had before rows were sorted in Python (for the "before" Spark figure).
_PREVIOUS_ORDER_BY = {
    "inventory_level": "dc_id, sku_id",
    "stockout_risk": "days_to_stockout ASC NULLS LAST, dc_id, sku_id",
    "supplier_performance": "supplier_id",
    "dc_utilization": "dc_id",
    "regional_fulfillment": "region_id",
}


def _spark_side_by_side(db, spark, as_of: dt.datetime) -> tuple[list[float], list[float]]:
    """Spark alone on the same inputs: the current single action vs the previous five concurrent actions."""
    from concurrent.futures import ThreadPoolExecutor

    from scbda_assets.kpis import compute, sql

    specs = list(compute.KPIS.values())
    keys = {compute._query_key(spec, name) for spec in specs for name in spec.inputs}
    tables = {key: compute._timed_aggregate(db, compute._query(key, as_of, False))[0] for key in keys}

    def five_actions():
        frames = {key: spark.createDataFrame(table, schema=compute._spark_schema(table.schema))
                  for key, table in tables.items()}

        def evaluate(spec):
            args = {"window_minutes": spec.window_minutes, **sql.THRESHOLDS}
            used = {key: value for key, value in args.items() if f":{key}" in spec.sql}
            bound = {name: frames[compute._query_key(spec, name)] for name in spec.inputs}
            text = f"{spec.sql}\nORDER BY {_PREVIOUS_ORDER_BY[spec.name]}"
            return spark.sql(text, args=used, **bound).toArrow().to_pylist()

        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            list(pool.map(evaluate, specs))

    one, five = [], []
    for i in range(TIMED_RUNS):
        for variant in ("one", "five") if i % 2 == 0 else ("five", "one"):
            started = time.perf_counter()
            compute._evaluate(spark, specs, tables) if variant == "one" else five_actions()
            (one if variant == "one" else five).append(time.perf_counter() - started)
    return one, five


def _live_minute_folds(db, end: dt.datetime, minutes: int = 3) -> list[float]:
    """The incremental cost a live run adds: one more minute of orders is ingested (a copy of the last backfilled
    minute, fresh ids, ingested now), the rollup folds it in (plus the unsealed tail: the last minute or two)."""
    last_minute = list(db.orders_fact.find({"order_ts": {"$gte": end - dt.timedelta(minutes=1), "$lt": end}},
                                           {"_id": 0}))
    seconds = []
    for i in range(minutes):
        rollup.fold_new_orders(db, now=dt.datetime.now(dt.UTC))
        now = dt.datetime.now(dt.UTC)
        db.orders_fact.insert_many([{**doc, "order_id": f"{doc['order_id']}-live{i}", "ingested_at": now}
                                    for doc in last_minute], ordered=False)
        started = time.perf_counter()
        rollup.fold_new_orders(db, now=dt.datetime.now(dt.UTC))
        seconds.append(time.perf_counter() - started)
    return seconds


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
