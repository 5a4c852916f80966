"""Writing the stream to MongoDB: exact balance, idempotent intervals, crash safety, late events, catch-up."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.domain import demand
from scbda_assets.generator import store, stream
from scbda_assets_tests.generator.conftest import balance_violations

MIN = dt.timedelta(minutes=1)


def _settings(settings, **changes):
    return dataclasses.replace(settings, events_per_minute=120.0, seed=3, **changes)


def _counts(db) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in (*FACT_COLLECTIONS, "inventory_state", "generator_pending")}


def _fingerprint(db) -> dict:
    state = db.generator_state.find_one({}, {"_id": 0, "written_at": 0})
    orders = sorted((o["order_id"], o["fulfilled_qty"]) for o in db.orders_fact.find({}, {"_id": 0}))
    return {"state": state, "orders": orders, "counts": _counts(db)}


def test_minutes_written_with_exact_balance(settings, mongo_db, t0):
    config = _settings(settings, late_event_fraction=0.0)
    result = stream.advance(mongo_db, config, end=t0 + 20 * MIN, start_if_new=t0)
    assert result.minutes == 20
    assert mongo_db.inventory_fact.count_documents({}) == 20 * demand.N_PAIRS
    assert mongo_db.inventory_state.count_documents({}) == demand.N_PAIRS
    assert result.written["orders_fact"] == mongo_db.orders_fact.count_documents({}) > 20 * 50
    assert balance_violations(mongo_db) == []
    order = mongo_db.orders_fact.find_one({}, {"_id": 0})
    assert set(order) == {"order_id", "sku_id", "dc_id", "region_id", "requested_qty", "fulfilled_qty", "lost_qty",
                          "order_value", "lost_revenue", "priority", "order_ts", "ingested_at"}
    assert order["order_ts"].tzinfo is not None and t0 <= order["order_ts"] < t0 + 20 * MIN
    # inventory_state is the stock after the last minute.
    state = mongo_db.inventory_state.find_one({"sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI"}, {"_id": 0})
    assert set(state) == {"sku_id", "dc_id", "on_hand_qty", "on_order_qty", "safety_stock", "reorder_point",
                          "updated_at"}
    assert state["updated_at"] == t0 + 20 * MIN
    last = mongo_db.inventory_fact.find_one({"sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI",
                                             "inventory_ts": t0 + 19 * MIN})
    sold = sum(o["fulfilled_qty"] for o in mongo_db.orders_fact.find(
        {"sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "order_ts": {"$gte": t0 + 19 * MIN}}))
    assert state["on_hand_qty"] == last["on_hand_qty"] - sold


def test_writing_the_same_interval_twice_changes_nothing(settings, mongo_db, t0):
    config = _settings(settings)
    stream.advance(mongo_db, config, end=t0 + 5 * MIN, start_if_new=t0)
    saved = mongo_db.generator_state.find_one({})
    stream.advance(mongo_db, config, end=t0 + 10 * MIN, start_if_new=t0)
    after = _fingerprint(mongo_db)
    # A retried run: the clock is back at t0+5 (as if the state update of minutes 5-10 had not been seen). What is
    # past the committed clock is rolled back and written again: the same documents, nothing twice.
    mongo_db.generator_state.replace_one({"_id": saved["_id"]}, saved)
    again = stream.advance(mongo_db, config, end=t0 + 10 * MIN, start_if_new=t0)
    assert again.minutes == 5 and again.events > 0
    assert _fingerprint(mongo_db) == after
    # And the same interval with a clock already past it is a no-op.
    noop = stream.advance(mongo_db, config, end=t0 + 10 * MIN, start_if_new=t0)
    assert noop.minutes == 0 and _fingerprint(mongo_db) == after


def test_crash_after_facts_before_state_is_applied_once(settings, mongo_db, t0, monkeypatch, test_env):
    config = _settings(settings, late_event_fraction=0.0)
    stream.advance(mongo_db, config, end=t0 + 5 * MIN, start_if_new=t0)
    real_save = store.save_state

    def crash(*args, **kwargs):
        raise ConnectionError("simulated crash between the fact writes and the state update")

    monkeypatch.setattr(store, "save_state", crash)
    with pytest.raises(ConnectionError):
        stream.advance(mongo_db, config, end=t0 + 10 * MIN, start_if_new=t0)
    assert mongo_db.generator_state.find_one({})["as_of"] == t0 + 5 * MIN  # stock change not applied
    # and the facts it wrote past the committed clock were rolled back as the run stopped
    assert mongo_db.inventory_fact.count_documents({}) == 5 * demand.N_PAIRS
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$gte": t0 + 5 * MIN}}) == 0
    monkeypatch.setattr(store, "save_state", real_save)
    stream.advance(mongo_db, config, end=t0 + 10 * MIN, start_if_new=t0)
    crashed = _fingerprint(mongo_db)

    # The same ten minutes written without a crash, in a second database, give the same documents and stock.
    client = mongo_db.client
    clean_db = client[mongo_db.name + "_clean"]
    try:
        stream.advance(clean_db, config, end=t0 + 5 * MIN, start_if_new=t0)
        stream.advance(clean_db, config, end=t0 + 10 * MIN, start_if_new=t0)
        clean = _fingerprint(clean_db)
    finally:
        client.drop_database(clean_db.name)
    assert crashed == clean
    assert balance_violations(mongo_db) == []


def test_second_writer_cannot_apply_the_same_minutes(settings, mongo_db, t0, monkeypatch):
    config = _settings(settings)
    stream.advance(mongo_db, config, end=t0 + 2 * MIN, start_if_new=t0)
    real_load = store.load_state
    stale = real_load(mongo_db)
    stream.advance(mongo_db, config, end=t0 + 4 * MIN, start_if_new=t0)  # the other writer got there first
    before = _fingerprint(mongo_db)
    monkeypatch.setattr(store, "load_state", lambda db: stale)
    with pytest.raises(stream.ClockMoved):
        stream.advance(mongo_db, config, end=t0 + 4 * MIN, start_if_new=t0)
    assert _fingerprint(mongo_db)["state"] == before["state"]
    assert _fingerprint(mongo_db)["orders"] == before["orders"]


def test_late_events_are_written_later_with_stock_effect_at_event_time(settings, mongo_db, t0):
    config = _settings(settings, late_event_fraction=0.3)
    # One minute per run, like the live schedule.
    for minute in range(1, 6):
        stream.advance(mongo_db, config, end=t0 + minute * MIN, start_if_new=t0)
    pending = list(mongo_db.generator_pending.find({}))
    assert pending, "some late events must still be waiting"
    assert all(p["release_at"] >= t0 + 5 * MIN for p in pending)
    assert all(p["doc"]["order_ts"] < t0 + 5 * MIN for p in pending if p["collection"] == "orders_fact")
    waiting = {p["_id"] for p in pending}
    assert not mongo_db.orders_fact.find_one({"order_id": {"$in": list(waiting)}})
    # The stream moves on: every late event arrives, none twice, and the balance was exact all along.
    for minute in range(6, 6 + 16):
        stream.advance(mongo_db, config, end=t0 + minute * MIN, start_if_new=t0)
    landed = mongo_db.orders_fact.count_documents({"order_id": {"$in": list(waiting)}})
    assert landed == sum(1 for p in pending if p["collection"] == "orders_fact")
    late_written = list(mongo_db.orders_fact.find({"order_id": {"$in": list(waiting)}}))
    assert all(o["order_ts"] < t0 + 5 * MIN for o in late_written)
    ids = [o["order_id"] for o in mongo_db.orders_fact.find({}, {"order_id": 1})]
    assert len(ids) == len(set(ids))
    early = mongo_db.orders_fact.count_documents({"order_ts": {"$lt": t0 + 5 * MIN}})
    assert early > 0 and landed > 0
    # Events up to t0+6 have all landed (delays are capped at 15 min): the balance over that span is exact.
    assert balance_violations(mongo_db, until=t0 + 6 * MIN) == []


def test_catch_up_is_bounded_without_gaps_or_overlaps(settings, mongo_db, t0):
    config = _settings(settings, catchup_max_minutes=7, late_event_fraction=0.0)
    first = stream.advance(mongo_db, config, end=t0 + MIN, start_if_new=t0, max_minutes=7)
    assert first.minutes == 1
    # Downtime: the next run is 30 minutes later; each run catches up at most 7 minutes.
    windows = []
    for _ in range(6):
        run = stream.advance(mongo_db, config, end=t0 + 31 * MIN, start_if_new=t0, max_minutes=7)
        windows.append((run.start, run.end, run.minutes))
    assert [w[2] for w in windows] == [7, 7, 7, 7, 2, 0]
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))  # contiguous, no overlap
    minutes = sorted(mongo_db.inventory_fact.distinct("inventory_ts"))
    assert minutes == [t0 + i * MIN for i in range(31)]  # every minute exactly once
    assert mongo_db.inventory_fact.count_documents({}) == 31 * demand.N_PAIRS
    per_minute = mongo_db.orders_fact.aggregate([
        {"$group": {"_id": {"$dateTrunc": {"date": "$order_ts", "unit": "minute"}}, "n": {"$sum": 1}}}
    ])
    assert len(list(per_minute)) == 31
    assert balance_violations(mongo_db) == []


def test_receipts_update_shipments(settings, mongo_db, t0):
    config = dataclasses.replace(settings, events_per_minute=30.0, seed=5, late_event_fraction=0.0)
    # Start at a low stock so purchase orders are placed at once, then run past their lead times quickly.
    stream.advance(mongo_db, config, end=t0 + MIN, start_if_new=t0)
    mongo_db.generator_state.update_one({}, {"$set": {"on_hand": [0] * demand.N_PAIRS}})
    stream.advance(mongo_db, config, end=t0 + 2 * MIN, start_if_new=t0)
    created = list(mongo_db.shipments_fact.find({}, {"_id": 0}))
    assert len(created) == demand.N_PAIRS
    assert all(s["status"] == "in_transit" and s["actual_arrival_ts"] is None for s in created)
    assert all(s["expected_arrival_ts"] > s["shipment_ts"] for s in created)
    # Jump the clock over the lead times (no events in between), then one minute receives them.
    state = mongo_db.generator_state.find_one({})
    later = max(po["arrival_ts"] for po in state["purchase_orders"]).replace(second=0, microsecond=0)
    mongo_db.generator_state.update_one({}, {"$set": {"as_of": later}})
    result = stream.advance(mongo_db, config, end=later + MIN, start_if_new=t0)
    assert result.received == demand.N_PAIRS
    received = list(mongo_db.shipments_fact.find({"status": "received"}))
    assert len(received) == demand.N_PAIRS
    assert all(s["actual_arrival_ts"] >= s["expected_arrival_ts"] for s in received)
    assert mongo_db.generator_state.find_one({})["purchase_orders"] == [] or all(
        po["shipment_id"] not in {s["shipment_id"] for s in received}
        for po in mongo_db.generator_state.find_one({})["purchase_orders"]
    )


def test_snapshot_cadence_keeps_the_balance(settings, mongo_db, t0):
    config = _settings(settings, late_event_fraction=0.0)
    stream.advance(mongo_db, config, end=t0 + 12 * MIN, start_if_new=t0, snapshot_every_minutes=5)
    times = sorted(mongo_db.inventory_fact.distinct("inventory_ts"))
    assert times == [t0, t0 + 5 * MIN, t0 + 10 * MIN]
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$gte": t0 + 11 * MIN}}) > 0
    assert balance_violations(mongo_db) == []
