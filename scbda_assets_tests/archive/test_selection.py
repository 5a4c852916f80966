"""Index-driven selection: malformed documents found by indexed queries (each archived exactly once), the computed
``source_bytes`` against MongoDB's ``$bsonSize``, both Spark write paths giving the same files' content."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from bson import ObjectId

from scbda_assets.archive import protocol
from scbda_assets.archive.schema import ORDERS, SHIPMENTS, SPECS_BY_COLLECTION
from scbda_assets.archive.selection import dateless_filters, malformed_filter, select, well_formed_filter
from scbda_assets_tests.archive import facts
from scbda_assets_tests.archive.conftest import DATA_START, NOW, assert_each_once

START = DATA_START
CUTOFF = dt.datetime(2026, 11, 20, 11, 0, tzinfo=dt.UTC)


def _odd_orders() -> list[dict]:
    """Malformed event times the range query cannot see: string, missing (ObjectId time), array, number."""
    return [
        {"order_id": "ODD-STRING", "order_ts": "2026-11-20T08:15:00Z", "ingested_at": START + dt.timedelta(minutes=15)},
        {"_id": ObjectId.from_datetime(START + dt.timedelta(hours=1, minutes=20)), "order_id": "ODD-NO-TIME"},
        # An array with a string and a date in range: matched by two queries, archived once (by ingested_at).
        {"order_id": "ODD-ARRAY", "order_ts": ["x", START + dt.timedelta(minutes=30)],
         "ingested_at": START + dt.timedelta(hours=2, minutes=1)},
        {"order_id": "ODD-NUMBER", "order_ts": 1763625600000, "ingested_at": START + dt.timedelta(minutes=40)},
        # Not archivable in this range: string event time, ingested after the cutoff.
        {"order_id": "ODD-LATE", "order_ts": "soon", "ingested_at": CUTOFF + dt.timedelta(minutes=1)},
    ]


def test_malformed_event_times_are_selected_once_in_their_archive_hour(mongo_db, hot):
    odd = _odd_orders()
    facts.insert_all(mongo_db, {"orders_fact": odd})
    selection = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF)
    raw = selection.table.filter(pa.compute.is_valid(selection.table["raw_json"]))
    hours = dict(zip(raw["_id"].to_pylist(), raw["hour"].to_pylist(), strict=True))
    assert hours == {str(odd[0]["_id"]): "08", str(odd[1]["_id"]): "09", str(odd[2]["_id"]): "10",
                     str(odd[3]["_id"]): "08"}
    assert selection.malformed_count == 4
    expected_typed = sum(1 for d in hot["orders_fact"] if START <= d["order_ts"] < CUTOFF)
    assert selection.record_count == expected_typed + 4


def test_a_string_event_time_is_archived_exactly_once(mongo_db, spark, spark_settings, hot):
    from scbda_assets.archive.storage import ArchiveStore

    store = ArchiveStore(spark_settings.archive_uri)
    odd = _odd_orders()
    facts.insert_all(mongo_db, {"orders_fact": odd})
    manifest = protocol.archive_range(mongo_db, spark, store, start=START, end=CUTOFF, now=NOW, safety_minutes=60)
    assert manifest["collections"]["orders_fact"]["malformed_count"] == 4
    assert mongo_db.orders_fact.count_documents({"order_id": "ODD-LATE"}) == 1
    assert mongo_db.orders_fact.count_documents({"order_id": {"$regex": "^ODD-"}}) == 1
    hot_now, cold = assert_each_once(spark, store, mongo_db, {**hot, "orders_fact": hot["orders_fact"] + odd})[
        "orders_fact"]
    assert cold == sum(1 for d in hot["orders_fact"] if d["order_ts"] < CUTOFF) + 4


@pytest.mark.parametrize("collection", ["orders_fact", "shipments_fact", "inventory_fact"])
def test_computed_source_bytes_equal_bson_size(mongo_db, hot, collection):
    spec = SPECS_BY_COLLECTION[collection]
    selection = select(mongo_db, spec, START, CUTOFF, CUTOFF)
    query = {"$or": [well_formed_filter(spec, START, CUTOFF, CUTOFF), malformed_filter(spec, START, CUTOFF, CUTOFF)]}
    rows = list(mongo_db[collection].aggregate([
        {"$match": query}, {"$group": {"_id": None, "n": {"$sum": 1}, "bytes": {"$sum": {"$bsonSize": "$$ROOT"}}}}]))
    assert rows[0]["n"] == selection.record_count > 0
    assert selection.source_bytes == rows[0]["bytes"]


def test_source_bytes_include_malformed_documents(mongo_db, hot):
    before = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF).source_bytes
    facts.insert_all(mongo_db, {"orders_fact": facts.malformed_orders(START)})
    after = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF)
    sizes = list(mongo_db.orders_fact.aggregate([{"$match": {"order_id": {"$not": {"$regex": "^O-"}}}},
                                                 {"$group": {"_id": None, "b": {"$sum": {"$bsonSize": "$$ROOT"}}}}]))
    assert after.malformed_count == 4 and after.source_bytes - before == sizes[0]["b"]


@pytest.mark.parametrize("spec", [ORDERS, SHIPMENTS], ids=lambda s: s.collection)
def test_every_selection_query_uses_the_event_time_index(mongo_db, hot, spec):
    mongo_db[spec.collection].create_index(spec.event_field)
    queries = [well_formed_filter(spec, START, CUTOFF, CUTOFF), malformed_filter(spec, START, CUTOFF, CUTOFF),
               *dateless_filters(spec, CUTOFF)]
    for query in queries:
        plan = mongo_db[spec.collection].find(query).explain()
        stats = plan["executionStats"]
        assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"]), query
        if query not in queries[:2]:  # the dateless queries touch nothing in a clean collection
            assert stats["totalDocsExamined"] == 0, (query, stats["totalDocsExamined"])


@pytest.mark.slow
def test_both_write_paths_write_the_same_rows(mongo_db, spark, spark_settings, hot):
    from scbda_assets.archive.storage import ArchiveStore

    store = ArchiveStore(spark_settings.archive_uri)
    facts.insert_all(mongo_db, {"orders_fact": facts.malformed_orders(START)})
    table = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF).table
    written = {}
    for via in ("arrow", "staged_parquet"):
        protocol._spark_write(spark, store, ORDERS, table, f"_staging/{via}", input_file=f"_staging/in-{via}.parquet",
                              via=via)
        frame = spark.read.schema(ORDERS.spark_ddl()).parquet(store.uri(f"_staging/{via}"))
        written[via] = sorted(tuple(row) for row in frame.collect())
        assert store.list_files(f"_staging/{via}", prefix="part-", recursive=True)
    assert not store.exists("_staging/in-staged_parquet.parquet")
    assert written["arrow"] == written["staged_parquet"] and len(written["arrow"]) == table.num_rows
