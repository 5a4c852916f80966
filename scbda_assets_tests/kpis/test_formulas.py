"""Each KPI on hand-made documents (real MongoDB + Spark Connect): windows, latest snapshot, ties, requested
demand, every supplier / DC / region present, nulls without a denominator, thresholds, malformed documents."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.kpis.compute import KPI_NAMES, compute_kpis, headline_numbers
from scbda_assets_tests.documents import T, minutes_before, order, shipment, snapshot

KHI, LHE, ISB = "DC-KHI", "DC-LHE", "DC-ISB"
ATTA, MILK = "SKU-STAPLE-001", "SKU-DAIRY-001"


def rows(db, spark, *names, as_of=T):
    run = compute_kpis(db, spark, as_of, names or KPI_NAMES, now=as_of)
    return {name: result.rows for name, result in run.results.items()}


def by(rows_, *keys):
    return {tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row for row in rows_}


def test_empty_window_keeps_every_supplier_dc_and_region_with_zeros_and_nulls(kpi_db, spark):
    # Only data outside the windows: before T - 15 min (live), before T - 30 days (supplier) and at T itself.
    kpi_db.inventory_fact.insert_one(snapshot("s-old", ATTA, KHI, 500, minutes_before(16)))
    kpi_db.orders_fact.insert_one(order("o-at-T", ATTA, KHI, T, requested=5))
    received = minutes_before(31 * 1440)
    kpi_db.shipments_fact.insert_one(shipment("sh-old", "SUP-LOCAL-001", received - dt.timedelta(days=2),
                                              actual=received))
    result = rows(kpi_db, spark)
    assert result["inventory_level"] == [] and result["stockout_risk"] == []
    assert [r["supplier_id"] for r in result["supplier_performance"]] == [
        "SUP-IMPORT-001", "SUP-LOCAL-001", "SUP-LOCAL-002", "SUP-REGIONAL-001"]
    for row in result["supplier_performance"]:
        assert (row["shipments_created"], row["shipments_received"]) == (0, 0)
        assert row["avg_planned_lead_time_days"] is None and row["stddev_planned_lead_time_days"] is None
        assert row["avg_actual_lead_time_days"] is None and row["on_time_rate"] is None
    assert [r["dc_id"] for r in result["dc_utilization"]] == ["DC-FSD", "DC-ISB", "DC-KHI", "DC-LHE", "DC-MUL"]
    assert all(r["volume_m3"] == 0.0 and r["utilization"] == 0.0 and r["status"] == "ok"
               and r["over_threshold"] is False for r in result["dc_utilization"])
    assert len(result["regional_fulfillment"]) == 4
    for row in result["regional_fulfillment"]:
        assert (row["orders"], row["units_requested"], row["revenue"]) == (0, 0, 0.0)
        assert row["fill_rate"] is None and row["avg_order_value"] is None


def test_window_is_half_open_on_event_time(kpi_db, spark):
    kpi_db.inventory_fact.insert_many([
        snapshot("a", ATTA, KHI, 100, minutes_before(15)),  # exactly T - W: included
        snapshot("b", ATTA, KHI, 900, T),  # exactly T: excluded (would be the latest)
        snapshot("c", MILK, KHI, 50, T),  # pair only at T: absent
    ])
    kpi_db.orders_fact.insert_many([
        order("o1", ATTA, KHI, minutes_before(15), requested=3, value=30.0),  # included
        order("o2", ATTA, KHI, T, requested=1000, value=9999.0),  # excluded
        order("o3", ATTA, KHI, minutes_before(15) - dt.timedelta(milliseconds=1), requested=7),  # excluded
    ])
    kpi_db.shipments_fact.insert_many([
        shipment("sh1", "SUP-LOCAL-001", minutes_before(30), planned=2.0,
                 actual=minutes_before(30) + dt.timedelta(minutes=1)),
        shipment("sh2", "SUP-LOCAL-001", T, planned=9.0),  # created at T: excluded
        shipment("sh3", "SUP-LOCAL-002", minutes_before(40), actual=T),  # received at T: excluded
    ])
    result = rows(kpi_db, spark)
    (level,) = result["inventory_level"]
    assert (level["sku_id"], level["on_hand_qty"], level["avg_on_hand_qty"]) == (ATTA, 100, 100.0)
    (risk,) = result["stockout_risk"]
    assert risk["live_demand_per_day"] == pytest.approx(3 * 1440 / 15)
    # 7-day demand: o1 and o3 (o2 is at T); the store's earliest order is o3, 15 min + 1 ms before T (>= 1 h floor).
    assert risk["history_days"] == pytest.approx(1 / 24) and risk["demand_per_day"] == pytest.approx(10 * 24)
    sindh = by(result["regional_fulfillment"], "region_id")["PK-SINDH"]
    assert (sindh["orders"], sindh["units_requested"], sindh["revenue"]) == (1, 3, 30.0)
    suppliers = by(result["supplier_performance"], "supplier_id")
    assert suppliers["SUP-LOCAL-001"]["shipments_created"] == 1 and suppliers["SUP-LOCAL-001"]["created_30m"] == 1
    assert suppliers["SUP-LOCAL-001"]["avg_planned_lead_time_days"] == 2.0
    assert suppliers["SUP-LOCAL-001"]["shipments_received"] == 1 and suppliers["SUP-LOCAL-001"]["received_30m"] == 1
    assert suppliers["SUP-LOCAL-002"]["shipments_received"] == 0 and suppliers["SUP-LOCAL-002"]["received_30m"] == 0
    # Received exactly at T: still in transit at T.
    assert suppliers["SUP-LOCAL-002"]["in_transit"] == 1 and suppliers["SUP-LOCAL-001"]["in_transit"] == 0


def test_latest_snapshot_not_the_sum_average_and_tie_break_by_snapshot_id(kpi_db, spark):
    kpi_db.inventory_fact.insert_many([
        snapshot("INV-1", ATTA, KHI, 300, minutes_before(10), safety_stock=50, reorder_point=80),
        snapshot("INV-2", ATTA, KHI, 200, minutes_before(5), safety_stock=50, reorder_point=80),
        # Two snapshots at the same latest time: the greater snapshot_id ("INV-4") wins.
        snapshot("INV-4", ATTA, KHI, 40, minutes_before(1), safety_stock=60, reorder_point=90),
        snapshot("INV-3", ATTA, KHI, 70, minutes_before(1), safety_stock=10, reorder_point=20),
    ])
    result = rows(kpi_db, spark, "inventory_level", "dc_utilization")
    (level,) = result["inventory_level"]
    assert level["on_hand_qty"] == 40  # never 300+200+40+70
    assert level["avg_on_hand_qty"] == pytest.approx((300 + 200 + 40 + 70) / 4)
    assert (level["safety_stock"], level["reorder_point"], level["below_safety_stock"]) == (60.0, 90.0, True)
    assert (level["product_name"], level["category"], level["dc_name"], level["region_id"]) == (
        "Atta (Wheat Flour) - 10kg", "Staples", "Karachi Central Warehouse", "PK-SINDH")
    khi = by(result["dc_utilization"], "dc_id")[KHI]
    assert khi["volume_m3"] == pytest.approx(40 * 0.015)


def test_stockout_uses_requested_demand_and_days_severity_thresholds(kpi_db, spark):
    # The store's first order is 3 min before T: history_days is its floor, 1/24, so demand_per_day = requested x 24
    # (and live_demand_per_day = requested in the 15-min window x 96).
    cases = {  # sku -> (on_hand, requested, fulfilled, expected days, days_severity: the seed design's rule)
        "SKU-STAPLE-001": (47, 1, 0, 47 / 24, "critical"),
        "SKU-STAPLE-002": (48, 1, 1, 2.0, "warning"),  # exactly 2 days: not critical
        "SKU-STAPLE-003": (167, 1, 1, 167 / 24, "warning"),
        "SKU-STAPLE-004": (168, 1, 1, 7.0, "ok"),  # exactly 7 days: not a warning
        "SKU-DAIRY-001": (0, 10, 0, 0.0, "critical"),  # nothing fulfilled: demand still counts
        "SKU-DAIRY-002": (500, None, None, None, "ok"),  # snapshots but no orders: no demand
    }
    for i, (sku, (on_hand, requested, fulfilled, _, _)) in enumerate(cases.items()):
        kpi_db.inventory_fact.insert_one(snapshot(f"s{i}", sku, LHE, on_hand, minutes_before(2)))
        if requested:
            kpi_db.orders_fact.insert_one(order(f"o{i}", sku, LHE, minutes_before(3), requested, fulfilled))
    kpi_db.orders_fact.insert_one(order("o-no-snapshot", "SKU-BEV-001", LHE, minutes_before(3), 50))
    run = compute_kpis(kpi_db, spark, T, ("stockout_risk",), now=T)
    risk = by(run.results["stockout_risk"].rows, "sku_id")
    assert set(risk) == set(cases)  # a pair with orders but no snapshot has no row
    for sku, (_, requested, _, days, severity) in cases.items():
        assert risk[sku]["demand_per_day"] == pytest.approx((requested or 0) * 24.0), sku
        assert risk[sku]["live_demand_per_day"] == pytest.approx((requested or 0) * 96.0), sku
        assert risk[sku]["days_to_stockout"] == (pytest.approx(days) if days is not None else None), sku
        assert risk[sku]["days_severity"] == severity, sku
    payload = run.results["stockout_risk"].payload()
    assert payload["window_minutes"] == 15
    assert [r["days_severity"] for r in run.results["stockout_risk"].rows][:2] == ["critical", "critical"]


def test_supplier_performance_statistics_and_supplier_without_shipments(kpi_db, spark):
    day = dt.timedelta(days=1)
    t0 = minutes_before(20)
    kpi_db.shipments_fact.insert_many([
        # Outside the 30-day window: created and received more than 30 days before T.
        shipment("old", "SUP-REGIONAL-001", T - 40 * day, planned=2.0, actual=T - 31 * day),
        shipment("a1", "SUP-LOCAL-001", minutes_before(25), planned=2.0),
        shipment("a2", "SUP-LOCAL-001", minutes_before(20), planned=3.0),
        shipment("a3", "SUP-LOCAL-001", minutes_before(5), planned=7.0),
        shipment("b1", "SUP-IMPORT-001", minutes_before(10), planned=6.5),  # one shipment: stddev null
        # Received in the window (created long before): 2 days late-ish vs on time.
        shipment("r1", "SUP-REGIONAL-001", t0 - 4 * day, planned=4.0, expected=t0, actual=t0),  # on time (equal)
        shipment("r2", "SUP-REGIONAL-001", t0 - 3 * day, planned=2.0, expected=t0 - day, actual=t0),  # late
    ])
    suppliers = by(rows(kpi_db, spark, "supplier_performance")["supplier_performance"], "supplier_id")
    local = suppliers["SUP-LOCAL-001"]
    assert local["shipments_created"] == 3 and local["avg_planned_lead_time_days"] == pytest.approx(4.0)
    assert local["stddev_planned_lead_time_days"] == pytest.approx(2.6457513110645907)  # sample stddev of 2,3,7
    imported = suppliers["SUP-IMPORT-001"]
    assert imported["shipments_created"] == 1 and imported["stddev_planned_lead_time_days"] is None
    regional = suppliers["SUP-REGIONAL-001"]
    # r1 and r2 were created 3-4 days ago: inside the 30-day window ("old" is not).
    assert regional["shipments_created"] == 2 and regional["avg_planned_lead_time_days"] == pytest.approx(3.0)
    assert regional["shipments_received"] == 2
    assert regional["avg_actual_lead_time_days"] == pytest.approx(3.5)
    assert regional["on_time_rate"] == 0.5
    assert regional["stddev_actual_lead_time_days"] == pytest.approx(0.7071067811865476)  # sample stddev of 4, 3
    assert regional["avg_delay_days"] == pytest.approx(0.5)  # r1 on time (0), r2 one day late
    assert (local["in_transit"], local["overdue"], regional["in_transit"]) == (3, 0, 0)
    idle = suppliers["SUP-LOCAL-002"]  # no shipments at all: present, zeros and nulls
    assert (idle["shipments_created"], idle["shipments_received"], idle["on_time_rate"]) == (0, 0, None)
    assert (idle["supplier_name"], idle["supplier_type"], idle["reliability_score"]) == (
        "Nestle Pakistan", "local_fmcg", 0.94)


def test_dc_utilization_thresholds(kpi_db, spark):
    # A SKU of 1 m3 per unit and DCs of 100 m3 make the ratios exact.
    kpi_db.skus_dim.update_one({"sku_id": ATTA}, {"$set": {"storage_m3": 1.0}})
    kpi_db.dcs_dim.update_many({}, {"$set": {"capacity_m3": 100.0}})
    for i, (dc, on_hand) in enumerate({"DC-KHI": 90, "DC-LHE": 86, "DC-ISB": 85, "DC-FSD": 120}.items()):
        kpi_db.inventory_fact.insert_one(snapshot(f"s{i}", ATTA, dc, on_hand, minutes_before(1)))
    dcs = by(rows(kpi_db, spark, "dc_utilization")["dc_utilization"], "dc_id")
    expected = {"DC-KHI": (0.90, "critical", True), "DC-LHE": (0.86, "high", True), "DC-ISB": (0.85, "ok", False),
                "DC-FSD": (1.2, "critical", True), "DC-MUL": (0.0, "ok", False)}
    for dc, (utilization, status, over) in expected.items():
        assert dcs[dc]["utilization"] == pytest.approx(utilization), dc
        assert (dcs[dc]["status"], dcs[dc]["over_threshold"]) == (status, over), dc
    assert (dcs["DC-KHI"]["city"], dcs["DC-KHI"]["latitude"], dcs["DC-KHI"]["longitude"]) == ("Karachi", 24.86, 67.01)


def test_regional_fulfillment_by_dc_region_and_zero_requested_units(kpi_db, spark):
    kpi_db.orders_fact.insert_many([
        # region_id on the order is ignored: an order belongs to the region of its DC.
        order("o1", ATTA, LHE, minutes_before(4), requested=10, fulfilled=8, value=800.0, lost_revenue=200.0,
              region_id="PK-SINDH"),
        order("o2", MILK, "DC-FSD", minutes_before(3), requested=5, fulfilled=5, value=100.0),
        order("o3", MILK, ISB, minutes_before(2), requested=0, fulfilled=0, value=0.0),  # zero requested units
    ])
    regions = by(rows(kpi_db, spark, "regional_fulfillment")["regional_fulfillment"], "region_id")
    north = regions["PK-PUNJAB-NORTH"]
    assert (north["orders"], north["units_requested"], north["units_fulfilled"]) == (2, 15, 13)
    assert north["fill_rate"] == pytest.approx(13 / 15)
    assert (north["revenue"], north["lost_revenue"], north["avg_order_value"]) == (900.0, 200.0, 450.0)
    capital = regions["PK-CAPITAL"]
    assert capital["orders"] == 1 and capital["units_requested"] == 0 and capital["fill_rate"] is None
    assert capital["avg_order_value"] == 0.0
    assert regions["PK-SINDH"]["orders"] == 0 and regions["PK-SINDH"]["region_name"] == "Sindh Province"


def test_malformed_documents_and_unknown_ids_are_skipped(kpi_db, spark):
    good_ts = minutes_before(5)
    kpi_db.inventory_fact.insert_many([
        snapshot("ok", ATTA, KHI, 10, minutes_before(6)),
        snapshot("bad-type", ATTA, KHI, "lots", good_ts),
        snapshot("bad-null", ATTA, KHI, None, good_ts),
        snapshot("bad-float", ATTA, KHI, 12.5, good_ts),
        snapshot("bad-ts", ATTA, KHI, 99, good_ts.isoformat()),  # a string, not a date
        {"snapshot_id": "bad-missing", "sku_id": ATTA, "dc_id": KHI, "inventory_ts": good_ts},
        snapshot("unknown-sku", "SKU-NOPE", KHI, 77, good_ts),
        snapshot("unknown-dc", ATTA, "DC-NOPE", 77, good_ts),
        snapshot("bad-safety", MILK, KHI, 5, good_ts, safety_stock="x"),
        snapshot(12345, MILK, KHI, 5, good_ts),  # snapshot_id not a string
    ])
    kpi_db.orders_fact.insert_many([
        order("ok", ATTA, KHI, good_ts, requested=2, value=10.0),
        order("bad-qty", ATTA, KHI, good_ts, requested="2"),
        order("bad-bool", ATTA, KHI, good_ts, requested=True, fulfilled=1),
        order("bad-value", ATTA, KHI, good_ts, value=None),
        order("unknown-dc", ATTA, "DC-NOPE", good_ts, requested=9),
        order("unknown-sku", "SKU-NOPE", KHI, good_ts, requested=9),
        {"order_id": "bad-missing", "order_ts": good_ts},
    ])
    kpi_db.shipments_fact.insert_many([
        shipment("bad-planned", "SUP-LOCAL-001", good_ts, planned="two", expected=T),
        shipment("unknown-supplier", "SUP-NOPE", good_ts),
        shipment("bad-expected", "SUP-LOCAL-001", minutes_before(40), expected="soon", actual=good_ts),
        {"shipment_id": "bad-missing", "shipment_ts": good_ts},
    ])
    kpi_db.dcs_dim.insert_one({"dc_id": 42, "dc_name": "not a dimension row"})
    result = rows(kpi_db, spark)
    assert [(r["sku_id"], r["on_hand_qty"]) for r in result["inventory_level"]] == [(ATTA, 10)]
    assert result["stockout_risk"][0]["live_demand_per_day"] == pytest.approx(2 * 96.0)
    assert result["stockout_risk"][0]["demand_per_day"] == pytest.approx(2 * 24.0)  # history_days = 1/24
    assert by(result["regional_fulfillment"], "region_id")["PK-SINDH"]["units_requested"] == 2
    suppliers = by(result["supplier_performance"], "supplier_id")
    assert set(suppliers) == {"SUP-IMPORT-001", "SUP-LOCAL-001", "SUP-LOCAL-002", "SUP-REGIONAL-001"}
    # bad-planned: created in the window with a string lead time; bad-expected: received with a string expectation.
    assert suppliers["SUP-LOCAL-001"]["shipments_created"] == 0
    assert suppliers["SUP-LOCAL-001"]["shipments_received"] == 0
    assert len(result["dc_utilization"]) == 5


def test_headline_numbers_of_a_run(kpi_db, spark):
    kpi_db.inventory_fact.insert_many([snapshot("a", ATTA, KHI, 100, minutes_before(1)),
                                       snapshot("b", MILK, KHI, 0, minutes_before(1))])
    kpi_db.orders_fact.insert_many([order("o1", MILK, KHI, minutes_before(2), requested=4, fulfilled=0, value=0.0),
                                    order("o2", ATTA, KHI, minutes_before(2), requested=4, fulfilled=4, value=80.0)])
    run = compute_kpis(kpi_db, spark, T, now=T)
    numbers = headline_numbers(run.results)
    assert numbers["total_on_hand"] == 100 and numbers["stockout_alerts"] == 2
    assert numbers["revenue"] == 80.0 and numbers["fill_rate"] == 0.5
    assert numbers["avg_on_time_rate"] is None and numbers["avg_actual_lead_time_days"] is None
    assert numbers["avg_utilization"] == pytest.approx(100 * 0.015 / 75000 / 5)


def test_unknown_kpi_name_and_naive_as_of_are_rejected(kpi_db, spark):
    with pytest.raises(ValueError, match="unknown KPI 'nope'"):
        compute_kpis(kpi_db, spark, T, ("nope",), now=T)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_kpis(kpi_db, spark, T.replace(tzinfo=None), now=T)
