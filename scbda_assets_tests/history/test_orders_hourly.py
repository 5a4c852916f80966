"""Stored hours are the same whichever way they are built (minute rollup, MongoDB $group), carry their minutes, and
the 7-day demand window's first hour, cut inside the hour, is summed from those minutes — never by re-reading the
hour's raw orders — and equals the plain-Python sum over the raw documents."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.history import maintain, orders_hourly
from scbda_assets.history import read as history_read
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.timeutil import HOUR
from scbda_assets.kpis import rollup
from scbda_assets_tests.history import scenario
from scbda_assets_tests.documents import T, order

MINUTE = dt.timedelta(minutes=1)


def _expected_hour(orders: list[dict], hour: dt.datetime) -> dict[tuple, dict]:
    """Per pair: the sums of the hour and the units requested per minute, in plain Python."""
    pairs: dict[tuple, dict] = {}
    for o in orders:
        if hour <= o["order_ts"] < hour + HOUR:
            row = pairs.setdefault((o["sku_id"], o["dc_id"]), {
                "orders": 0, "units_requested": 0, "units_fulfilled": 0, "revenue": 0.0, "lost_revenue": 0.0,
                "orders_in_full": 0, "requested_by_minute": [0] * 60})
            row["orders"] += 1
            row["units_requested"] += o["requested_qty"]
            row["units_fulfilled"] += o["fulfilled_qty"]
            row["revenue"] += o["order_value"]
            row["lost_revenue"] += o["lost_revenue"]
            row["orders_in_full"] += o["fulfilled_qty"] == o["requested_qty"]
            row["requested_by_minute"][o["order_ts"].minute] += o["requested_qty"]
    return pairs


def _stored_hour(db, hour: dt.datetime) -> dict[tuple, dict]:
    return {(r["sku_id"], r["dc_id"]): r for r in history_database(db)[ORDERS_HOURLY].find({"hour": hour})}


def _assert_hour(db, hour, orders):
    stored, expected = _stored_hour(db, hour), _expected_hour(orders, hour)
    assert set(stored) == set(expected) and len(expected) >= 4
    for pair, want in expected.items():
        got = stored[pair]
        for name in ("orders", "units_requested", "units_fulfilled", "orders_in_full", "requested_by_minute"):
            assert got[name] == want[name], (pair, name)
        assert got["revenue"] == pytest.approx(want["revenue"]) and got["lost_revenue"] == pytest.approx(
            want["lost_revenue"])


def test_an_hour_summed_from_the_minute_rollup_equals_the_orders_and_takes_a_late_order_once(chain_db):
    orders = scenario.documents(days=0.25, seed=5, as_of=T + 70 * MINUTE)["orders_fact"]
    chain_db.orders_fact.insert_many([dict(o) for o in orders])
    # The KPI schedule folds the rollup every few minutes from T + 10 min on: the hour T is covered from its start.
    for minutes in (10, 30, 50, 65):
        report = rollup.fold_new_orders(chain_db, now=T + minutes * MINUTE)
    assert report["covered_from"] <= T
    built = maintain.refresh(chain_db, None, now=T + 65 * MINUTE, rollup_from=report["covered_from"])
    assert built["order_hours_from_rollup"] == 1  # the hour T; the hours before it came from the orders
    _assert_hour(chain_db, T, orders)
    _assert_hour(chain_db, T - HOUR, orders)

    # A late order into the stored hour: found by the scan, the hour summed again from the rollup, counted once.
    late = order("LATE-1", *scenario.PAIRS[0], T + 41 * MINUTE, requested=9)
    late["ingested_at"] = T + 66 * MINUTE
    chain_db.orders_fact.insert_one(dict(late))
    report = rollup.fold_new_orders(chain_db, now=T + 67 * MINUTE)
    again = maintain.refresh(chain_db, None, now=T + 67 * MINUTE, rollup_from=report["covered_from"])
    assert again["order_hours_from_rollup"] == 1
    _assert_hour(chain_db, T, [*orders, late])
    rollup_built = _stored_hour(chain_db, T)

    # The same hour rebuilt from the orders themselves stores the same rows.
    orders_hourly.build_hours(history_database(chain_db), chain_db, None, [T], now=T + 67 * MINUTE)
    assert {pair: row["requested_by_minute"] for pair, row in _stored_hour(chain_db, T).items()} == {
        pair: row["requested_by_minute"] for pair, row in rollup_built.items()}


def _recording(db):
    raw = history_read.raw_order_sums(db, None)
    calls = []

    def sums(lo, hi):
        calls.append((lo, hi))
        return raw(lo, hi)

    return sums, calls


def test_the_demand_windows_first_hour_is_summed_from_stored_minutes(chain_db):
    orders = scenario.documents(days=8, seed=9)["orders_fact"]
    chain_db.orders_fact.insert_many([dict(o) for o in orders])
    maintain.refresh(chain_db, None, now=T)
    start = T - dt.timedelta(days=7, minutes=23, seconds=40)  # inside a minute, inside an hour
    expected = {}
    for o in orders:
        if start <= o["order_ts"] < T:
            expected[(o["sku_id"], o["dc_id"])] = expected.get((o["sku_id"], o["dc_id"]), 0) + o["requested_qty"]
    assert len(expected) == 5 and any(start <= o["order_ts"] < start + 23 * MINUTE for o in orders)

    sums, calls = _recording(chain_db)
    rows = history_read.pair_requested_units(chain_db, None, start, T, raw_sums=sums)
    assert {(r["sku_id"], r["dc_id"]): r["units_requested"] for r in rows} == expected
    assert calls == [(start, start + 40 * dt.timedelta(seconds=1))]  # only the 20 s left of the first minute

    # Minutes dropped (hours older than MINUTES_KEPT): the same sums, the first hour read from the raw orders.
    assert orders_hourly.drop_old_minutes(history_database(chain_db), now=T + dt.timedelta(days=9)) > 0
    sums, calls = _recording(chain_db)
    rows = history_read.pair_requested_units(chain_db, None, start, T, raw_sums=sums)
    assert {(r["sku_id"], r["dc_id"]): r["units_requested"] for r in rows} == expected
    assert calls == [(start, T - dt.timedelta(days=7))]
