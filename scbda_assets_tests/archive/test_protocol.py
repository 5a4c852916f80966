"""The zero-loss protocol on real MongoDB + Spark Connect: layout, manifest, crash at every step, re-runs, late
events, in-transit shipments, malformed documents."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.catalog import list_manifests
from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range, recover
from scbda_assets.timeutil import iso_z
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import DATA_START, NOW, archived_ids, assert_each_once

START = DATA_START
END = dt.datetime(2026, 11, 20, 11, 0, tzinfo=dt.UTC)


class Crash(BaseException):  # a process death, not an error recovery handles
    pass


def crash_at(step: str, occurrence: int = 1):
    seen = {"n": 0}

    def checkpoint(name: str) -> None:
        if name == step:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise Crash(step)

    return checkpoint


def _archive(mongo_db, spark, store, **kwargs):
    return archive_range(mongo_db, spark, store, start=kwargs.pop("start", START), end=kwargs.pop("end", END),
                         now=kwargs.pop("now", NOW), safety_minutes=60, **kwargs)


def test_archives_eligible_hours_with_spec_layout_and_manifest(mongo_db, spark, store, hot):
    manifest = _archive(mongo_db, spark, store)

    assert manifest["status"] == mf.COMPLETE
    assert manifest["cutoff"] == "2026-11-20T11:00:00Z"
    orders = manifest["collections"]["orders_fact"]
    expected = [d for d in hot["orders_fact"] if d["order_ts"] < END]
    assert orders["record_count"] == len(expected) == orders["deleted_count"] > 0
    assert orders["partitions"] == [f"event_date=2026-11-20/hour={h:02d}" for h in (8, 9, 10)]
    assert orders["min_event_ts"] == iso_z(min(d["order_ts"] for d in expected))
    assert orders["max_event_ts"] == iso_z(max(d["order_ts"] for d in expected))
    assert orders["bytes_written"] > 0 and orders["source_bytes"] > 0
    for path in orders["files"]:
        folder, name = path.rsplit("/", 1)
        assert folder.startswith("orders_fact/event_date=2026-11-20/hour=")
        assert name.startswith(f"part-{manifest['batch_id']}-") and name.endswith(".parquet")
    versions = manifest_store.versions(store, manifest["batch_id"])
    # pending, verified, complete: the last two kept (the fallback), named with the writer's lease epoch
    assert [path for _, path in versions] == [f"_manifests/{manifest['batch_id']}.{seq}.e1.json" for seq in (2, 1)]
    on_disk = json.loads(store.read_text(versions[0][1]))
    assert on_disk["status"] == mf.COMPLETE
    assert {"batch_id", "created_at", "cutoff", "status", "collections"} <= set(on_disk)
    assert not store.list_files(INCOMPLETE_DIR) and not store.list_files("_staging", recursive=True)
    # In-transit shipments and everything at/after the cutoff stayed hot.
    assert mongo_db.shipments_fact.count_documents({"status": "in_transit", "shipment_ts": {"$lt": END}}) > 0
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$lt": END}}) == 0
    assert mongo_db.orders_fact.count_documents({}) == len(hot["orders_fact"]) - len(expected)
    counts = assert_each_once(spark, store, mongo_db, hot)
    assert all(cold > 0 for _, cold in counts.values())


def test_parquet_schema_is_explicit_nullable_snappy(mongo_db, spark, store, hot):
    import pyarrow.parquet as pq

    manifest = _archive(mongo_db, spark, store)
    path = store.path(manifest["collections"]["shipments_fact"]["files"][0])
    metadata = pq.ParquetFile(path)
    schema = metadata.schema_arrow
    assert schema.names[:2] == ["_id", "shipment_id"] and "raw_json" in schema.names
    assert all(field.nullable for field in schema)
    assert str(schema.field("shipment_ts").type).startswith("timestamp")
    assert metadata.metadata.row_group(0).column(0).compression == "SNAPPY"


@pytest.mark.parametrize("step,occurrence", [("written", 1), ("verified", 1), ("manifest", 1), ("deleted_chunk", 2)])
def test_crash_at_every_step_then_rerun_converges(mongo_db, spark, store, hot, step, occurrence):
    with pytest.raises(Crash):
        _archive(mongo_db, spark, store, checkpoint=crash_at(step, occurrence), delete_chunk=50)
    assert store.list_files(INCOMPLETE_DIR), "the crashed batch is left marked incomplete"
    recovered = recover(mongo_db, spark, store)
    assert [m["status"] for m in recovered] == [mf.COMPLETE]
    counts = assert_each_once(spark, store, mongo_db, hot)
    assert counts["orders_fact"][1] == sum(d["order_ts"] < END for d in hot["orders_fact"])
    # And a plain re-run afterwards archives nothing twice.
    assert _archive(mongo_db, spark, store) is None
    assert_each_once(spark, store, mongo_db, hot)


def test_crash_twice_in_a_row_still_converges(mongo_db, spark, store, hot):
    with pytest.raises(Crash):
        _archive(mongo_db, spark, store, checkpoint=crash_at("written"))
    with pytest.raises(Crash):  # the re-run crashes too, inside the recovery of the first batch
        _archive(mongo_db, spark, store, checkpoint=crash_at("deleted_chunk"), delete_chunk=40)
    assert _archive(mongo_db, spark, store) is None
    assert len(list_manifests(store)) == 1
    assert_each_once(spark, store, mongo_db, hot)


def test_rerun_of_the_same_partition_is_idempotent(mongo_db, spark, store, hot):
    first = _archive(mongo_db, spark, store)
    files_before = store.list_files("orders_fact", recursive=True)
    again = _archive(mongo_db, spark, store)
    assert first is not None and again is None
    assert store.list_files("orders_fact", recursive=True) == files_before
    assert_each_once(spark, store, mongo_db, hot)


def test_late_events_go_into_a_new_batch_file_in_the_same_folder(mongo_db, spark, store, hot):
    first = _archive(mongo_db, spark, store)
    late = documents.orders(START + dt.timedelta(minutes=10), START + dt.timedelta(minutes=20), 7, seed=99, prefix="LATE")
    documents.insert_all(mongo_db, {"orders_fact": late})
    second = _archive(mongo_db, spark, store, now=NOW + dt.timedelta(minutes=5))
    assert second["batch_id"] != first["batch_id"]
    assert second["collections"]["orders_fact"]["record_count"] == 7
    assert second["collections"]["orders_fact"]["partitions"] == ["event_date=2026-11-20/hour=08"]
    folder = store.list_files("orders_fact/event_date=2026-11-20/hour=08")
    assert {name.rsplit("/", 1)[1][5:5 + len(first["batch_id"])] for name in folder} == {
        first["batch_id"], second["batch_id"]}
    assert_each_once(spark, store, mongo_db, {**hot, "orders_fact": hot["orders_fact"] + late})


def test_in_transit_shipments_wait_and_go_to_their_shipment_hour_later(mongo_db, spark, store, hot):
    _archive(mongo_db, spark, store)
    waiting = list(mongo_db.shipments_fact.find({"status": "in_transit", "shipment_ts": {"$lt": END}}))
    assert waiting
    received_at = NOW + dt.timedelta(minutes=10)
    mongo_db.shipments_fact.update_many({"_id": {"$in": [d["_id"] for d in waiting]}},
                                        {"$set": {"status": "received", "actual_arrival_ts": received_at}})
    # Received, but within the safety horizon: still hot (the supplier KPI needs it).
    assert _archive(mongo_db, spark, store, now=NOW + dt.timedelta(minutes=30)) is None
    assert mongo_db.shipments_fact.count_documents({"_id": {"$in": [d["_id"] for d in waiting]}}) == len(waiting)
    later = _archive(mongo_db, spark, store, end=END + dt.timedelta(hours=2), now=NOW + dt.timedelta(hours=2))
    entry = later["collections"]["shipments_fact"]
    hours = {f"event_date=2026-11-20/hour={d['shipment_ts'].hour:02d}" for d in waiting}
    assert hours <= set(entry["partitions"])
    assert {str(d["_id"]) for d in waiting} <= set(archived_ids(spark, store, "shipments_fact"))
    assert_each_once(spark, store, mongo_db, hot)


def test_malformed_documents_are_archived_as_they_are(mongo_db, spark, store, hot):
    bad = documents.malformed_orders(START)
    documents.insert_all(mongo_db, {"orders_fact": bad})
    manifest = _archive(mongo_db, spark, store)
    assert manifest["collections"]["orders_fact"]["malformed_count"] == len(bad)
    frame = spark.read.option("basePath", store.uri("orders_fact")).parquet(store.uri("orders_fact"))
    rows = {r["_id"]: r for r in frame.where("raw_json IS NOT NULL").collect()}
    assert set(rows) == {str(d["_id"]) for d in bad}
    first = rows[str(bad[0]["_id"])]
    assert first["requested_qty"] is None and json.loads(first["raw_json"])["requested_qty"] == "seven"
    assert first["fulfilled_qty"] == 3 and int(first["hour"]) == 8
    extra = json.loads(rows[str(bad[2]["_id"])]["raw_json"])
    assert extra["coupon"] == {"code": "X1", "pct": 5} and extra["order_id"] == 12345
    # No usable event time: filed under its ingested_at hour.
    assert rows[str(bad[3]["_id"])]["order_ts"] is None
    assert_each_once(spark, store, mongo_db, {**hot, "orders_fact": hot["orders_fact"] + bad})


def test_nothing_eligible_before_the_horizon_writes_nothing(mongo_db, spark, store):
    documents.insert_all(mongo_db, {"orders_fact": documents.orders(NOW - dt.timedelta(minutes=50), NOW, 20)})
    assert _archive(mongo_db, spark, store, start=NOW - dt.timedelta(hours=3), end=NOW) is None
    assert mongo_db.orders_fact.count_documents({}) == 20
    assert not list_manifests(store) and not store.list_files("orders_fact", recursive=True)


def test_layout_paths():
    hour = dt.datetime(2026, 1, 2, 3, tzinfo=dt.UTC)
    assert layout.hour_dir("orders_fact", hour) == "orders_fact/event_date=2026-01-02/hour=03"
    assert layout.attempt_part_file("orders_fact", "event_date=2026-01-02/hour=03", "B", 7,
                                    "part-00001-f00d-c000.snappy.parquet") == (
        "orders_fact/event_date=2026-01-02/hour=03/part-B-e7-00001-f00d-c000.snappy.parquet")
    assert layout.manifest_file("B") == "_manifests/B.json"
    assert layout.partition_key(hour) == "2026-01-02-03:00"
    assert layout.hour_of_partition_key("2026-01-02-03:00") == hour
    assert layout.is_batch_id(layout.new_batch_id(hour, "0123abcd"))
