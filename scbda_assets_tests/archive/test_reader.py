"""Index-driven selection: malformed documents found by indexed queries (each archived exactly once), the computed
``source_bytes`` against MongoDB's ``$bsonSize``, chunked selection, Spark's write into hour folders."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from bson import ObjectId

from scbda_assets.archive import protocol, staging
from scbda_assets.archive.eligibility import dateless_filters, malformed_filter, well_formed_filter
from scbda_assets.archive.reader import select, select_chunks, split_range
from scbda_assets.archive.schema import ORDERS, SHIPMENTS, SPECS_BY_COLLECTION
from scbda_assets.archive.sizing import eligible_hour_pipeline, eligible_hour_stats
from scbda_assets_tests import documents
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
    documents.insert_all(mongo_db, {"orders_fact": odd})
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
    documents.insert_all(mongo_db, {"orders_fact": odd})
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
    documents.insert_all(mongo_db, {"orders_fact": documents.malformed_orders(START)})
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


@pytest.mark.parametrize("spec,dateless_only", [(ORDERS, True), (SHIPMENTS, False)], ids=["orders", "shipments"])
def test_exact_sizing_uses_the_event_time_index(mongo_db, hot, spec, dateless_only):
    mongo_db[spec.collection].create_index(spec.event_field)
    explained = mongo_db.command("explain", {"aggregate": spec.collection, "cursor": {},
                                             "pipeline": eligible_hour_pipeline(spec, CUTOFF, dateless_only=dateless_only)},
                                 verbosity="queryPlanner")
    winning = str(explained.get("queryPlanner") or explained["stages"][0]["$cursor"]["queryPlanner"])
    assert "COLLSCAN" not in winning and "IXSCAN" in winning


def test_sensor_sizing_counts_hours_on_the_index_and_estimates_bytes(mongo_db, hot):
    """The sensor sizes every minute: per-hour index counts (no document read) × avgObjSize, plus the dateless
    documents sized exactly."""
    mongo_db.orders_fact.create_index("order_ts")
    # (An array event time would count in the hour of its date too: the sizing is an estimate.)
    odd = [d for d in _odd_orders() if d["order_id"] != "ODD-ARRAY"]
    documents.insert_all(mongo_db, {"orders_fact": odd})
    stats = {s.hour.hour: s for s in eligible_hour_stats(mongo_db, ORDERS, CUTOFF)}
    typed = [d for d in hot["orders_fact"] if d["order_ts"] < CUTOFF]
    expected = {h: sum(1 for d in typed if d["order_ts"].hour == h) for h in (8, 9, 10)}
    expected[8] += 2  # ODD-STRING and ODD-NUMBER, by ingested_at
    expected[9] += 1  # ODD-NO-TIME, by ObjectId time
    assert {h: s.documents for h, s in stats.items()} == expected
    exact = {row["_id"].hour: row["bytes"] for row in mongo_db.orders_fact.aggregate([
        {"$match": {"order_ts": {"$type": "date", "$lt": CUTOFF}}},
        {"$group": {"_id": {"$dateTrunc": {"date": "$order_ts", "unit": "hour"}},
                    "bytes": {"$sum": {"$bsonSize": "$$ROOT"}}}}])}
    for hour in (8, 9, 10):
        assert abs(stats[hour].bytes - exact[hour]) < 0.25 * exact[hour], (hour, stats[hour].bytes, exact[hour])
    plan = mongo_db.command("explain", {"count": "orders_fact", "query": {"order_ts": {"$gte": START, "$lt": CUTOFF}}})
    assert "COUNT_SCAN" in str(plan["queryPlanner"]["winningPlan"])


def test_chunked_selection_equals_the_whole_in_event_time_order(mongo_db, hot):
    documents.insert_all(mongo_db, {"orders_fact": documents.malformed_orders(START)})
    whole = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF)
    chunks = list(select_chunks(mongo_db, ORDERS, START, CUTOFF, CUTOFF, chunk_bytes=4096))
    assert len(chunks) >= 3  # two typed (raw batches: 101 documents, then the rest) and the malformed
    assert [c.malformed_count for c in chunks] == [0] * (len(chunks) - 1) + [4]  # typed chunks first
    assert pa.concat_tables([c.table for c in chunks]).equals(whole.table)
    typed = pa.concat_tables([c.table for c in chunks[:-1]])["order_ts"].to_pylist()
    assert typed == sorted(typed) and len(typed) == whole.record_count - 4
    assert sum(c.source_bytes for c in chunks) == whole.source_bytes


def test_a_range_is_split_at_event_time_quantiles(mongo_db, hot):
    slices = split_range(mongo_db, ORDERS, START, CUTOFF, CUTOFF, 3, min_documents=10)
    assert len(slices) == 3 and slices[0][0] == START and slices[-1][1] == CUTOFF
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))
    counts = [mongo_db.orders_fact.count_documents({"order_ts": {"$gte": a, "$lt": b}}) for a, b in slices]
    assert max(counts) - min(counts) <= 2 and sum(counts) == sum(1 for d in hot["orders_fact"]
                                                                  if START <= d["order_ts"] < CUTOFF)
    assert split_range(mongo_db, ORDERS, START, CUTOFF, CUTOFF, 3, min_documents=10**6) == [(START, CUTOFF)]


def test_two_streams_stage_exactly_what_one_stream_stages(mongo_db, spark_settings, hot):
    import pyarrow.dataset as ds

    from scbda_assets.archive.staging import stage_selection
    from scbda_assets.archive.storage import ArchiveStore

    store = ArchiveStore(spark_settings.archive_uri)
    odd = _odd_orders()
    documents.insert_all(mongo_db, {"orders_fact": odd + documents.malformed_orders(START)})
    one = stage_selection(mongo_db, store, ORDERS, START, CUTOFF, "one", streams=1)
    two = stage_selection(mongo_db, store, ORDERS, START, CUTOFF, "two", streams=2, min_slice_documents=10)
    assert len(store.list_files("one")) == 1 and len(store.list_files("two")) == 2
    assert one.records == two.records == len(set(two.ids.to_pylist())) > 0
    assert one.malformed == two.malformed == 8 and one.source_bytes == two.source_bytes
    assert sorted(one.ids.to_pylist()) == sorted(two.ids.to_pylist())
    staged = ds.dataset(store.path("two"), filesystem=store.fs, format="parquet").to_table(columns=["_id"])
    assert sorted(staged["_id"].to_pylist()) == sorted(two.ids.to_pylist())


def test_spark_writes_the_staged_rows_into_their_hour_folders(mongo_db, spark, spark_settings, hot):
    import pyarrow.parquet as pq

    from scbda_assets.archive.storage import ArchiveStore

    store = ArchiveStore(spark_settings.archive_uri)
    documents.insert_all(mongo_db, {"orders_fact": documents.malformed_orders(START)})
    table = select(mongo_db, ORDERS, START, CUTOFF, CUTOFF).table
    store.fs.create_dir(store.path("_staging"), recursive=True)
    pq.write_table(table, store.path("_staging/input.parquet"), filesystem=store.fs)
    staging.spark_write(spark, store, ORDERS, "_staging/input.parquet", "_staging/out")
    files = store.list_files("_staging/out", prefix="part-", recursive=True)
    assert {path.split("/")[3] for path in files} == {"hour=08", "hour=09", "hour=10"}
    frame = spark.read.schema(ORDERS.spark_ddl()).parquet(store.uri("_staging/out"))
    written = {row["_id"]: (row["order_id"], row["hour"]) for row in frame.select("_id", "order_id", "hour").collect()}
    staged = {row["_id"]: (row["order_id"], row["hour"]) for row in table.select(["_id", "order_id", "hour"]).to_pylist()}
    assert written == staged and len(written) == table.num_rows
