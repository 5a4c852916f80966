"""The KPIs over hot + cold equal the plain-Python reference over the raw documents of both stores, field by field;
archiving hours changes no payload; late events (into an aggregated hour and into an archived hour) and hours half
archived (the same orders in both stores) count exactly once."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.archive.protocol import archive_range
from scbda_assets.domain.reference import DIMENSIONS, dimension_documents
from scbda_assets.history.daily import daily_history
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.kpis.compute import KPI_NAMES, compute_kpis
from scbda_assets_tests.history import scenario
from scbda_assets_tests.documents import T, order
from scbda_assets_tests.kpis.reference import reference_kpis
from scbda_assets_tests.kpis.test_reference_check import _same

DIMS = {name: dimension_documents(name) for name in DIMENSIONS}


def _compare(run, facts, as_of=T):
    expected = reference_kpis(facts, DIMS, as_of)
    for name in KPI_NAMES:
        got_rows, want_rows = run.results[name].rows, expected[name]
        assert len(got_rows) == len(want_rows), name
        for got, want in zip(got_rows, want_rows):
            assert list(got) == list(want), name
            for field in want:
                assert _same(got[field], want[field], field), (name, field, got, want)
    return expected


def _reference_daily(facts, as_of=T, days=30):
    """history:daily from the raw documents, in plain Python."""
    from collections import defaultdict

    from scbda_assets_tests.kpis.reference import ORDER_FIELDS, SHIPMENT_FIELDS, schema_ok

    region_of = {d["dc_id"]: d["region_id"] for d in DIMS["dcs_dim"]}
    first = as_of.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days - 1)
    regions = defaultdict(lambda: [0, 0, 0, 0.0, 0.0, 0])
    for o in facts["orders_fact"]:
        if schema_ok(o, ORDER_FIELDS) and first <= o["order_ts"] < as_of:
            r = regions[(f"{o['order_ts']:%Y-%m-%d}", region_of[o["dc_id"]])]
            for i, v in enumerate((1, o["requested_qty"], o["fulfilled_qty"], o["order_value"], o["lost_revenue"],
                                   o["fulfilled_qty"] == o["requested_qty"])):
                r[i] += v
    received = defaultdict(list)
    for s in facts["shipments_fact"]:
        actual = s["actual_arrival_ts"]
        if schema_ok(s, SHIPMENT_FIELDS, ("actual_arrival_ts",)) and actual and first <= actual < as_of:
            received[(f"{actual:%Y-%m-%d}", s["supplier_id"])].append(s)
    return regions, received


def _check_daily(daily, facts, as_of=T):
    regions, received = _reference_daily(facts, as_of)
    assert daily["days"] == 30 and len(daily["regions"]) == 120 and len(daily["suppliers"]) == 120
    for row in daily["regions"]:
        n, req, ful, rev, lost, full = regions.get((row["date"], row["region_id"]), [0, 0, 0, 0.0, 0.0, 0])
        assert (row["orders"], row["units_requested"], row["units_fulfilled"], row["orders_in_full"]) == (
            n, req, ful, full), row
        assert row["revenue"] == pytest.approx(rev) and row["lost_revenue"] == pytest.approx(lost)
        assert row["fill_rate"] == (pytest.approx(ful / req) if req else None)
        assert row["order_fill_rate"] == (pytest.approx(full / n) if n else None)
    for row in daily["suppliers"]:
        got = received.get((row["date"], row["supplier_id"]), [])
        assert row["shipments_received"] == len(got)
        if got:
            lead = sum((s["actual_arrival_ts"] - s["shipment_ts"]) / dt.timedelta(days=1) for s in got) / len(got)
            assert row["avg_actual_lead_time_days"] == pytest.approx(lead)
            assert row["on_time_rate"] == pytest.approx(
                sum(s["actual_arrival_ts"] <= s["expected_arrival_ts"] for s in got) / len(got))
    assert sum(r["orders"] for r in daily["regions"]) > 100 and sum(
        r["shipments_received"] for r in daily["suppliers"]) > 0


def _by(rows, *keys):
    return {tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row for row in rows}


@pytest.mark.slow
def test_ten_days_mostly_archived_equal_the_reference_and_archival_changes_nothing(chain_db, archive_store, spark):
    facts = scenario.documents(days=10, seed=13)
    scenario.insert(chain_db, facts)
    before = compute_kpis(chain_db, spark, T, now=T, archive=archive_store)
    expected = _compare(before, facts)

    # Field checks the scenario was built for (so the comparison above is not vacuous).
    stockout = _by(expected["stockout_risk"], "sku_id", "dc_id")
    assert stockout[scenario.NO_DEMAND]["demand_per_day"] == 0 and stockout[scenario.NO_DEMAND]["days_to_stockout"] \
        is None and stockout[scenario.NO_DEMAND]["stockout_before_receipt"] is False
    assert stockout[scenario.NOTHING_IN_TRANSIT]["next_receipt_ts"] is None
    assert stockout[scenario.NOTHING_IN_TRANSIT]["horizon_days"] == 3.0  # the SKU's lead time
    assert all(row["history_days"] == 7.0 for row in stockout.values())
    assert all(stockout[pair]["demand_stddev_per_day"] > 0 for pair in scenario.PAIRS)
    received_at_t = next(s for s in facts["shipments_fact"] if s["shipment_id"] == scenario.RECEIVED_AT_T)
    assert stockout[scenario.PAIRS[0]]["next_receipt_ts"] is not None
    supplier = _by(expected["supplier_performance"], "supplier_id")
    assert supplier["SUP-IMPORT-001"]["overdue"] >= 1 and sum(r["shipments_received"] for r in supplier.values()) > 5
    assert received_at_t["actual_arrival_ts"] == T and supplier["SUP-LOCAL-002"]["in_transit"] >= 1
    assert before.results["stockout_risk"].payload()["history_days"] == 7.0
    assert before.results["supplier_performance"].payload()["history_days"] == 30.0

    # Archive every hour older than 2 h (shipments in transit and the one received at T stay hot).
    manifest = archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=11),
                             end=T - dt.timedelta(hours=2), now=T, safety_minutes=60)
    archived = manifest["collections"]["orders_fact"]["record_count"]
    assert archived > 0.9 * len(facts["orders_fact"])
    assert chain_db.orders_fact.count_documents({}) < 0.1 * len(facts["orders_fact"])
    after = compute_kpis(chain_db, spark, T, now=T, archive=archive_store)
    for name in KPI_NAMES:
        assert after.results[name].payload() == before.results[name].payload(), name
    assert after.history["refresh"]["order_hours_from_archive"] > 200  # the hours really came from Parquet
    _check_daily(daily_history(chain_db, archive_store, as_of=T, data_until=T), facts)

    # Half archived: archived orders of two hours are back in MongoDB (a hand-over not yet deleted) ...
    old_hours = [o for o in facts["orders_fact"] if T - dt.timedelta(days=4) <= o["order_ts"] < T - dt.timedelta(
        days=4) + dt.timedelta(hours=2)]
    assert old_hours
    chain_db.orders_fact.insert_many([dict(o) for o in old_hours])
    # ... and late events: into an archived (and aggregated) hour, and into an aggregated hour still hot.
    late = [order("LATE-ARCHIVED", "SKU-STAPLE-001", "DC-KHI", T - dt.timedelta(days=3, minutes=17), requested=7),
            order("LATE-HOT", "SKU-DAIRY-001", "DC-LHE", T - dt.timedelta(minutes=100), requested=5)]
    for doc in late:
        doc["ingested_at"] = T + dt.timedelta(minutes=1)
    chain_db.orders_fact.insert_many([dict(doc) for doc in late])
    facts["orders_fact"] += late
    later = compute_kpis(chain_db, spark, T, now=T + dt.timedelta(minutes=2), archive=archive_store)
    _compare(later, facts)
    week_before = _by(before.results["stockout_risk"].rows, "sku_id", "dc_id")[scenario.PAIRS[0]]["demand_per_day"]
    week_after = _by(later.results["stockout_risk"].rows, "sku_id", "dc_id")[scenario.PAIRS[0]]["demand_per_day"]
    assert week_after == pytest.approx(week_before + 7 / 7.0)  # the late order, once; the hand-over, not at all


def test_a_store_younger_than_seven_days(chain_db, spark):
    facts = scenario.documents(days=2.6, seed=7)
    scenario.insert(chain_db, facts)
    run = compute_kpis(chain_db, spark, T, now=T)
    expected = _compare(run, facts)
    rows = expected["stockout_risk"]
    earliest = min(o["order_ts"] for o in facts["orders_fact"])
    assert rows[0]["history_days"] == pytest.approx((T - earliest) / dt.timedelta(days=1)) and rows[0][
        "history_days"] < 2.6
    # Two complete days are covered (the 20th and the 21st): the spread is defined.
    assert any(r["demand_stddev_per_day"] is not None for r in rows)
    assert run.results["inventory_level"].payload()["history_days"] == rows[0]["history_days"]
    _check_daily(daily_history(chain_db, None, as_of=T, data_until=T), facts)


def test_history_rows_stay_bounded_by_hours_and_pairs(chain_db, spark):
    scenario.insert(chain_db, scenario.documents(days=3, seed=3))
    compute_kpis(chain_db, spark, T, ("stockout_risk",), now=T)
    history = history_database(chain_db)
    hours = len(history[ORDERS_HOURLY].distinct("hour"))
    assert 70 <= hours <= 72 and history[ORDERS_HOURLY].count_documents({}) <= hours * 5


def test_the_hour_in_progress_from_the_minute_rollup_equals_the_reference(chain_db, spark):
    from scbda_assets.kpis import rollup

    as_of = T + dt.timedelta(minutes=37)  # 37 minutes of the hour in progress, not stored in the history layer
    facts = scenario.documents(days=1.2, seed=11, as_of=as_of)
    scenario.insert(chain_db, facts)
    rollup.fold_new_orders(chain_db, now=as_of - dt.timedelta(minutes=20))  # the rollup has run for a while
    run = compute_kpis(chain_db, spark, as_of, now=as_of)
    assert run.history["rollup_covered_from"] <= T  # the hour in progress came from the rollup
    _compare(run, facts, as_of)


def test_a_demand_window_cut_inside_a_minute_equals_the_reference(chain_db, spark):
    as_of = T + dt.timedelta(minutes=23, seconds=40)  # the 7-day window starts 40 s before a minute, mid-hour
    facts = scenario.documents(days=8, seed=17, as_of=as_of)
    scenario.insert(chain_db, facts)
    run = compute_kpis(chain_db, spark, as_of, ("stockout_risk", "inventory_level"), now=as_of)
    expected = reference_kpis(facts, DIMS, as_of)
    for name in ("stockout_risk", "inventory_level"):
        assert len(run.results[name].rows) == len(expected[name]) >= 5
        for got, want in zip(run.results[name].rows, expected[name]):
            for field in want:
                assert _same(got[field], want[field], field), (name, field, got, want)
    assert any(r["demand_per_day"] > 0 for r in run.results["stockout_risk"].rows)


def test_a_past_as_of_whose_live_window_was_archived_since_changes_no_payload(chain_db, archive_store, spark):
    """`scbda kpis --as-of <past>`: the live window's hour archived since the as-of (the safety horizon only keeps
    windows at a live as-of hot). Its orders and snapshots come from both stores, each once, so the payloads stay
    those computed before the archive run and equal the reference."""
    facts = scenario.documents(days=1.5, seed=29)
    scenario.insert(chain_db, facts)
    before = compute_kpis(chain_db, spark, T, now=T, archive=archive_store)
    _compare(before, facts)
    assert before.results["inventory_level"].rows and any(
        row["orders"] for row in before.results["regional_fulfillment"].rows)  # the live window is not empty
    later = T + dt.timedelta(hours=2)
    manifest = archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=2), end=T, now=later,
                             safety_minutes=60)
    assert manifest["collections"]["inventory_fact"]["record_count"] == len(facts["inventory_fact"])
    assert chain_db.inventory_fact.count_documents({}) == 0 and chain_db.orders_fact.count_documents(
        {"order_ts": {"$gte": T - dt.timedelta(minutes=15)}}) == 0
    # A hand-over not yet deleted: some archived snapshots and live-window orders are back in MongoDB.
    chain_db.inventory_fact.insert_many([dict(doc) for doc in facts["inventory_fact"][:5]])
    chain_db.orders_fact.insert_many([dict(o) for o in facts["orders_fact"] if o["order_ts"] >= T - dt.timedelta(
        minutes=15)][:5])
    after = compute_kpis(chain_db, spark, T, now=later, archive=archive_store)
    for name in KPI_NAMES:
        assert after.results[name].payload() == before.results[name].payload(), name
    _compare(after, facts)
