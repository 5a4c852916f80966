"""KPI sanity rules on snapshots shaped like the Redis contract (pure)."""

from scbda_assets.domain.reference import DCS, REGIONS
from scbda_assets.quality.kpi_checks import kpi_sanity_problems


def _dc_rows(**override):
    return [{"dc_id": dc.dc_id, "utilization": 0.6, "volume_m3": 100.0, "status": "ok", **override} for dc in DCS]


def test_sane_snapshot_has_no_problems():
    assert kpi_sanity_problems("dc_utilization", {"rows": _dc_rows()}) == []
    regions = [{"region_id": r.region_id, "fill_rate": None, "revenue": 0, "units_fulfilled": 0} for r in REGIONS]
    assert kpi_sanity_problems("regional_fulfillment", {"rows": regions}) == []


def test_each_problem_is_named():
    assert kpi_sanity_problems("dc_utilization", None) == ["kpi:dc_utilization is missing from Redis"]
    missing = kpi_sanity_problems("dc_utilization", {"rows": _dc_rows()[1:]})
    assert missing == ["missing dc_id: DC-KHI"]
    negative = kpi_sanity_problems("dc_utilization", {"rows": _dc_rows(utilization=-0.1)})
    assert negative == ["utilization out of range for 5 rows (e.g. DC-KHI)"]
    rows = [{"region_id": r.region_id, "fill_rate": 1.2, "revenue": 1, "units_fulfilled": 1} for r in REGIONS]
    assert kpi_sanity_problems("regional_fulfillment", {"rows": rows}) == [
        "fill_rate out of range for 4 rows (e.g. PK-SINDH)"
    ]


def test_new_fields_are_checked():
    from scbda_assets.domain.reference import SUPPLIERS

    risk = [{"sku_id": "SKU-STAPLE-001", "on_hand_qty": 5, "days_to_stockout": 1.0, "demand_per_day": 5.0,
             "demand_stddev_per_day": 1.0, "horizon_days": 2.0, "stockout_probability": 1.5, "severity": "critical"}]
    assert kpi_sanity_problems("stockout_risk", {"rows": risk}) == [
        "stockout_probability out of range for 1 rows (e.g. SKU-STAPLE-001)"]
    suppliers = [{"supplier_id": s.supplier_id, "on_time_rate": 0.9, "shipments_created": 1,
                  "avg_actual_lead_time_days": 2.0, "avg_delay_days": 0.1, "in_transit": 1, "overdue": 2}
                 for s in SUPPLIERS]
    assert kpi_sanity_problems("supplier_performance", {"rows": suppliers}) == [
        "overdue > in_transit for 4 rows (e.g. SUP-LOCAL-001)"]
    assert kpi_sanity_problems("dc_utilization", {"rows": _dc_rows(inbound_m3=-1.0)}) == [
        "inbound_m3 out of range for 5 rows (e.g. DC-KHI)"]
