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
