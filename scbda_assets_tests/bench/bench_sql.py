"""`scbda sql` at interactive speed (issue 25, item 1): the same queries over 30 days of hot + cold orders, side by
side, on the volume of the KPI benchmark's 30-day scenario (generated the same way: 30 days at 20 events/min,
archived by the archive's own code path up to 2 h ago, then 16 minutes at 100×, 150,000 events/min, in MongoDB).

- ``staged``: the hot orders copied from MongoDB into Parquet for every query (the previous design);
- ``mirror_first``: the first query of the hot-orders mirror (it copies every hot order once);
- ``mirror_warm``: a query after one more minute at 100× (the mirror reads that minute only), then one with
  nothing new; the median of three;
- ``cold_only``: Spark counting the archive alone (the floor: no hot rows, no de-duplication).

Every answer is checked against the plain MongoDB + Parquet counts. SCBDA_BENCH_SQL_LIVE_MINUTES and
SCBDA_BENCH_SQL_COLD_DAYS shorten it.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time

import pymongo

from scbda_assets.archive.protocol import archive_range
from scbda_assets.archive.schema import ORDERS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import sql_views
from scbda_assets.history.sql_views import run_sql
from scbda_assets.kpis.refresh import SparkHandle, open_spark
from scbda_assets.resources import spark_config
from scbda_assets.settings import Settings
from scbda_assets_tests.bench.bench_kpis import HUNDRED_X, LOW_RATE, SEED, _seed_dimensions

LIVE_MINUTES = int(os.environ.get("SCBDA_BENCH_SQL_LIVE_MINUTES", "16"))
COLD_DAYS = int(os.environ.get("SCBDA_BENCH_SQL_COLD_DAYS", "30"))
COUNT = "SELECT COUNT(*) AS n FROM orders"
BY_REGION_DAY = "SELECT region_id, event_date, COUNT(*) AS n, SUM(order_value) AS value FROM orders " \
                "GROUP BY region_id, event_date ORDER BY region_id, event_date"


def _row(metric, value, unit, target="", note="") -> dict:
    print(f"   {metric} = {value} {unit} {target} {note}", flush=True)
    return {"benchmark": "sql", "metric": metric, "value": value, "unit": unit, "target": target, "note": note}


def run(ctx) -> list[dict]:
    from dagster_pyspark.resources import spark_session_from_config

    from scbda_assets.generator.backfill import backfill

    base: Settings = ctx["settings"]
    settings = Settings.from_env({**base.to_env(), "SCBDA_MONGO_DB": "bench_sql",
                                  "SCBDA_ARCHIVE_URI": f"{base.archive_uri.rstrip('/')}/bench_sql"})
    _seed_dimensions(settings)
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    db = client[settings.mongo_db]
    config = spark_config(settings)

    def new_handle() -> SparkHandle:  # the server closes a session idle for 5 minutes: one per phase
        return SparkHandle(lambda: open_spark(config, lambda: spark_session_from_config(config)))

    handle = new_handle()
    archive = ArchiveStore(settings.archive_uri)
    rows = []
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    try:
        t0 = time.perf_counter()
        backfill(settings, minutes=COLD_DAYS * 1440 - LIVE_MINUTES, rate=LOW_RATE,
                 end=end - dt.timedelta(minutes=LIVE_MINUTES), seed=SEED, progress=False)
        handle.run(lambda spark: archive_range(db, spark, archive, start=end - dt.timedelta(days=31),
                                               end=end - dt.timedelta(hours=2), now=end, safety_minutes=60))
        handle.close()
        backfill(settings, minutes=LIVE_MINUTES, rate=HUNDRED_X, end=end, seed=SEED, progress=False)
        handle = new_handle()
        rows.append(_row("setup_seconds", round(time.perf_counter() - t0, 1), "s"))

        def truth() -> int:
            cold = handle.run(lambda spark: spark.read.parquet(archive.uri("orders_fact")).select("order_id")
                              .distinct().count())
            return cold + db.orders_fact.count_documents({"$jsonSchema": ORDERS.json_schema()})  # disjoint stores

        def timed(query: str, label: str, note: str = "") -> float:
            started = time.perf_counter()
            table = handle.run(lambda spark: run_sql(spark, db, archive, query, max_rows=None))
            seconds = time.perf_counter() - started
            if query == COUNT:
                assert table.column("n")[0].as_py() == truth(), label
            return seconds

        hot, total = db.orders_fact.estimated_document_count(), truth()
        volume = f"{total:,} orders over {COLD_DAYS} days, {hot:,} of them hot"
        rows.append(_row("sql_orders_total", total, "orders", "", volume))
        staged = sql_views.MIRRORED
        sql_views.MIRRORED = {}  # the previous design: stage every hot order per query
        try:
            rows.append(_row("sql_count_30d_staged", round(timed(COUNT, "staged"), 2), "s", "", volume))
        finally:
            sql_views.MIRRORED = staged
        rows.append(_row("sql_count_30d_mirror_first", round(timed(COUNT, "first"), 2), "s", "",
                         "copies every hot order into the mirror once"))
        warm, grouped = [], []
        for i in range(3):
            backfill(settings, minutes=1, rate=HUNDRED_X, end=end + dt.timedelta(minutes=i + 1), seed=SEED + 1 + i,
                     progress=False)
            warm.append(timed(COUNT, f"after a minute {i}"))
            grouped.append(timed(BY_REGION_DAY, f"group {i}"))
        rows.append(_row("sql_count_30d_mirror_after_1min_100x", round(statistics.median(warm), 2), "s", "<= 3",
                         f"median of 3; each after one more minute at {HUNDRED_X:g} events/min"))
        rows.append(_row("sql_group_region_day_30d_mirror", round(statistics.median(grouped), 2), "s", "<= 5",
                         "GROUP BY region_id, event_date; median of 3, nothing new since the COUNT"))
        idle = [timed(COUNT, f"idle {i}") for i in range(3)]
        rows.append(_row("sql_count_30d_mirror_nothing_new", round(statistics.median(idle), 2), "s", "<= 3"))
        started = time.perf_counter()
        cold = handle.run(lambda spark: spark.read.parquet(archive.uri("orders_fact")).count())
        rows.append(_row("sql_count_30d_cold_only", round(time.perf_counter() - started, 2), "s", "",
                         f"{cold:,} archived orders, Parquet only"))
    finally:
        handle.close()
        client.drop_database(settings.mongo_db)
        client.drop_database(f"{settings.mongo_db}_history")
        client.close()
    return rows
