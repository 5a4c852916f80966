"""Malformed documents written into MongoDB from outside, end to end: the quality check counts them, the KPIs skip
them (and do not crash), the archive keeps them as they are (raw JSON) and removes them from MongoDB."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.dataset as ds
import redis

from scbda_assets.archive.cli import archive_once
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.generator.backfill import backfill
from scbda_assets.kpis.refresh import refresh_kpis_once
from scbda_assets.quality.rules import schema_violation
from scbda_assets.settings import Settings
from scbda_assets_tests.documents import DROP, valid_order


def test_malformed_orders_are_counted_skipped_and_archived_as_they_are(test_env, spark_server, mongo_db):
    settings = Settings.from_env({**test_env, "SCBDA_SPARK_REMOTE": spark_server,
                                  "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001"})
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    backfill(settings, minutes=150, rate=60, end=now, seed=8, progress=False)
    old, recent = now - dt.timedelta(minutes=140), now - dt.timedelta(minutes=5)
    malformed = [
        valid_order(990001, order_ts=old, requested_qty="many"),  # wrong type, in an archivable hour
        valid_order(990002, order_ts=old, dc_id=DROP),  # missing field
        valid_order(990003, order_ts=recent, requested_qty=None, fulfilled_qty="x"),  # in the KPI window
        valid_order(990004, order_ts="2026-11-20T10:00:00Z"),  # event time not even a date
    ]
    mongo_db.orders_fact.insert_many([dict(doc) for doc in malformed])
    assert mongo_db.orders_fact.count_documents(schema_violation("orders_fact")) == 4

    # KPIs: the run succeeds and counts only the valid orders of the window.
    summary = refresh_kpis_once(settings, as_of=now)
    window = {"order_ts": {"$gte": now - dt.timedelta(minutes=15), "$lt": now}}
    valid_in_window = mongo_db.orders_fact.count_documents({**window, "$nor": [schema_violation("orders_fact")]})
    regions = json.loads(redis.Redis.from_url(settings.redis_url).get("kpi:regional_fulfillment"))["rows"]
    assert summary["kpis"]["regional_fulfillment"]["rows"] == 4
    assert sum(row["orders"] for row in regions) == valid_in_window > 0

    # Archive: the old malformed documents are archived with their raw JSON and leave MongoDB; none is lost.
    done = archive_once(settings, dry_run=False)
    assert done["batch"]["status"] == "complete"
    store = ArchiveStore(settings.archive_uri)
    archived = ds.dataset(store.path("orders_fact"), filesystem=store.fs, format="parquet",
                          partitioning="hive").to_table(columns=["order_id", "raw_json"]).to_pylist()
    raw_by_id = {row["order_id"]: row["raw_json"] for row in archived if row["raw_json"]}
    assert {"ORD-T-990001", "ORD-T-990002"} <= set(raw_by_id)
    assert json.loads(raw_by_id["ORD-T-990001"])["requested_qty"] == "many"  # kept as it was
    assert "dc_id" not in json.loads(raw_by_id["ORD-T-990002"])
    for doc in malformed:
        in_hot = mongo_db.orders_fact.count_documents({"order_id": doc["order_id"]})
        in_cold = sum(row["order_id"] == doc["order_id"] for row in archived)
        assert in_hot + in_cold == 1, doc["order_id"]  # exactly one place
