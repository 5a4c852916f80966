"""The checker on real stores (a real mongod, Parquet files in the archive layout): a generated chain with its oldest
hour moved to the archive shows no violation (the positive self-test: no false alarm), and each planted fault is
reported under its invariant (an id in both stores, a lost order, a ghost shipment, an unreadable file skipped)."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest
from pymongoarrow.api import Schema, find_arrow_all

from scbda_assets.archive.layout import attempt_part_file, partition_dir
from scbda_assets.chaos import invariants as inv
from scbda_assets.chaos.collect import MOVEMENT_COLUMNS, archive_root
from scbda_assets.chaos.checker import check_stores
from scbda_assets.generator.stream import advance
from scbda_assets.timeutil import floor_hour

SEED = 5


@pytest.fixture
def chain(settings, mongo_db):
    """90 minutes of the stream at a small rate; its first hour archived by hand (ids moved, not copied)."""
    hour = floor_hour(dt.datetime.now(dt.UTC)) - dt.timedelta(hours=3)
    end = hour + dt.timedelta(minutes=90)
    advance(mongo_db, settings, end=end, start_if_new=hour, rate=1500, seed=SEED)
    root = archive_root(settings.archive_uri)
    moved = {}
    for collection, field in (("orders_fact", "order_ts"), ("inventory_fact", "inventory_ts")):
        query = {field: {"$gte": hour, "$lt": hour + dt.timedelta(hours=1)}}
        table = find_arrow_all(mongo_db[collection], query, schema=Schema(MOVEMENT_COLUMNS[collection]))
        path = root / attempt_part_file(collection, partition_dir(hour), "20260101T000000Z-0000abcd", 1,
                                        "part-00000.snappy.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        moved[collection] = mongo_db[collection].delete_many(query).deleted_count
    return mongo_db, root, moved, end


def test_a_clean_chain_half_archived_has_no_violation_and_each_planted_fault_is_reported(settings, chain):
    db, root, moved, end = chain
    assert moved["orders_fact"] > 1000 and moved["inventory_fact"] > 1000
    found, figures = check_stores(db, settings.archive_uri, [])
    assert found == [], found
    assert figures["ids"]["orders_fact"]["archive"] == moved["orders_fact"] and figures["ids"]["orders_fact"]["mongodb"]
    assert db.shipments_fact.count_documents({"status": "in_transit"}) > 0  # the ghost check had something to check

    # An archived order back in MongoDB (a delete that never happened): in both stores.
    archived = pq.read_table(next(root.glob("orders_fact/*/*/*.parquet"))).slice(0, 1).to_pylist()[0]
    db.orders_fact.insert_one({**archived, "order_ts": archived["order_ts"]})
    # A hot order with fulfilled units lost; a shipment in transit that no purchase order of the state holds.
    lost = db.orders_fact.find_one_and_delete({"fulfilled_qty": {"$gt": 0}, "order_ts": {"$lt": end - dt.timedelta(
        minutes=2)}, "order_id": {"$ne": archived["order_id"]}})
    ghost = db.shipments_fact.find_one({"status": "in_transit"}, {"_id": 0})
    db.shipments_fact.insert_one({**ghost, "shipment_id": "SHP-GHOST-1"})
    # A corrupt file beside the good one is skipped and reported, not a crash.
    (root / "orders_fact" / partition_dir(archived["order_ts"]) / "part-x-00000.snappy.parquet").write_bytes(b"PAR1xx")

    found, figures = check_stores(db, settings.archive_uri, [])
    by_invariant = {v.invariant: v for v in found}
    assert set(by_invariant) == {inv.IDS_ONCE, inv.STOCK_BALANCE, inv.NO_GHOSTS}, found
    assert archived["order_id"] in by_invariant[inv.IDS_ONCE].detail
    assert by_invariant[inv.STOCK_BALANCE].count == 1 and f"off by -{lost['fulfilled_qty']}" in \
        by_invariant[inv.STOCK_BALANCE].detail
    assert "SHP-GHOST-1" in by_invariant[inv.NO_GHOSTS].detail
    assert [f.split(":")[0] for f in figures["unreadable_archive_files"]] == [
        f"orders_fact/{partition_dir(archived['order_ts'])}/part-x-00000.snappy.parquet"]
