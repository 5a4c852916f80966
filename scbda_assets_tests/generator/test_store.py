"""MongoDB side: indexes (checked with explain), duplicate-tolerant bulk inserts, guarded state updates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pymongo.errors import BulkWriteError

from scbda_assets.domain.calibration import calibrate
from scbda_assets.domain.simulation import initial_state
from scbda_assets.generator import store


def _winning_stages(plan: dict) -> set[str]:
    stages, stack = set(), [plan["queryPlanner"]["winningPlan"]]
    while stack:
        node = stack.pop()
        stages.add(node.get("stage"))
        stack.extend(node.get("inputStages", []))
        if "inputStage" in node:
            stack.append(node["inputStage"])
    return stages


def test_indexes_unique_business_ids_and_event_time(mongo_db):
    mongo_db.orders_fact.create_index("ingested_at", name="ingested_at")  # what an earlier version created
    store.ensure_indexes(mongo_db)
    store.ensure_indexes(mongo_db)  # idempotent
    for collection, key in (("orders_fact", "order_id"), ("shipments_fact", "shipment_id"),
                            ("inventory_fact", "snapshot_id")):
        info = mongo_db[collection].index_information()
        assert any(spec["key"] == [(key, 1)] and spec.get("unique") for spec in info.values()), collection
    assert any(spec["key"] == [("sku_id", 1), ("dc_id", 1), ("order_ts", 1)]
               for spec in mongo_db.orders_fact.index_information().values())
    assert any(spec["key"] == [("sku_id", 1), ("dc_id", 1), ("inventory_ts", 1)]
               for spec in mongo_db.inventory_fact.index_information().values())
    orders = mongo_db.orders_fact.index_information()
    assert orders[store.ORDERS_BY_INGESTION]["key"] == [("ingested_at", 1), ("order_ts", 1)]
    assert "ingested_at" not in orders  # superseded by the compound index: dropped


@pytest.mark.parametrize(
    "collection, query",
    [
        ("orders_fact", {"order_ts": {"$gte": dt.datetime(2026, 5, 5), "$lt": dt.datetime(2026, 5, 5, 0, 15)}}),
        ("orders_fact", {"sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "order_ts": {"$gte": dt.datetime(2026, 5, 5)}}),
        ("inventory_fact", {"inventory_ts": {"$gte": dt.datetime(2026, 5, 5)}}),
        ("inventory_fact", {"sku_id": "SKU-BEV-001", "dc_id": "DC-LHE", "inventory_ts": {"$lt": dt.datetime(2026, 5, 5)}}),
        ("shipments_fact", {"actual_arrival_ts": {"$gte": dt.datetime(2026, 5, 5)}}),
        ("shipments_fact", {"status": "received", "shipment_ts": {"$lt": dt.datetime(2026, 5, 5)}}),
    ],
)
def test_window_queries_use_indexes(mongo_db, collection, query):
    store.ensure_indexes(mongo_db)
    mongo_db[collection].insert_one({"probe": True})
    plan = mongo_db[collection].find(query).explain()
    stages = _winning_stages(plan)
    assert "IXSCAN" in stages and "COLLSCAN" not in stages, stages


def test_insert_ignores_duplicates_only(mongo_db):
    store.ensure_indexes(mongo_db)
    docs = [{"order_id": f"ORD-{i}", "order_ts": dt.datetime(2026, 5, 5)} for i in range(5)]
    assert store.insert_ignoring_duplicates(mongo_db.orders_fact, [dict(d) for d in docs]) == 5
    again = [dict(d) for d in docs] + [{"order_id": "ORD-new", "order_ts": dt.datetime(2026, 5, 5)}]
    assert store.insert_ignoring_duplicates(mongo_db.orders_fact, again) == 1
    assert mongo_db.orders_fact.count_documents({}) == 6
    assert store.insert_ignoring_duplicates(mongo_db.orders_fact, []) == 0
    # Any other write error is not swallowed (here: a schema validator rejects the document).
    mongo_db.create_collection("strict", validator={"$jsonSchema": {"required": ["order_id"]}})
    mongo_db.strict.create_index("order_id", unique=True)
    with pytest.raises(BulkWriteError):
        store.insert_ignoring_duplicates(mongo_db.strict, [{"order_id": "a"}, {"no_id": 1}])


def test_state_update_is_guarded_by_previous_as_of(mongo_db):
    cal = calibrate(60.0)
    state = initial_state(dt.datetime(2026, 5, 5, 10, 0), cal, np.random.default_rng(1))
    assert store.save_state(mongo_db, state, None, {})
    assert not store.save_state(mongo_db, state, None, {})  # a second "first" writer loses
    later = type(state)(state.as_of + np.timedelta64(1, "m"), state.on_hand - 1, state.po_id, state.po_pair,
                        state.po_qty, state.po_arrival)
    assert store.save_state(mongo_db, later, state.as_of, {})
    assert not store.save_state(mongo_db, later, state.as_of, {})  # stale guard: applied once only
    loaded = store.load_state(mongo_db)
    assert loaded.as_of == later.as_of and np.array_equal(loaded.on_hand, later.on_hand)


@pytest.mark.parametrize(
    "corruption",
    [{"$unset": {"on_hand": ""}}, {"$set": {"on_hand": [1, 2, 3]}}, {"$set": {"on_hand": "lots"}},
     {"$set": {"purchase_orders": [{"shipment_id": "x", "pair": 99, "quantity": 1,
                                    "arrival_ts": dt.datetime(2026, 5, 6)}]}}],
)
def test_malformed_state_is_one_clear_line(mongo_db, corruption):
    cal = calibrate(60.0)
    assert store.save_state(mongo_db, initial_state(dt.datetime(2026, 5, 5, 10), cal, np.random.default_rng(1)),
                            None, {})
    mongo_db.generator_state.update_one({}, corruption)
    with pytest.raises(store.StateError) as caught:
        store.load_state(mongo_db)
    message = str(caught.value)
    assert "\n" not in message and "generator_state is malformed" in message
    # never "delete it": a new stream over stored time would put other contents under the same ids
    assert "delete" not in message and "another database" in message
