"""KPI sanity checks, read back from the Redis snapshot the KPI run just wrote (what the dashboard will show)."""

from __future__ import annotations

import json
from collections.abc import Callable

import dagster as dg

from scbda_assets.contract import kpi_key
from scbda_assets.domain.reference import DCS, REGIONS, SUPPLIERS
from scbda_assets.resources import RedisResource


def _in_unit_interval(value) -> bool:
    return value is None or 0.0 <= value <= 1.0


def _non_negative(value) -> bool:
    return value is None or value >= 0


# kpi name -> (key field, ids that must all be present or None, {field: predicate})
SANITY: dict[str, tuple[str, set[str] | None, dict[str, Callable]]] = {
    "inventory_level": ("sku_id", None, {"on_hand_qty": _non_negative, "avg_on_hand_qty": _non_negative,
                                         "days_of_cover": _non_negative}),
    "stockout_risk": ("sku_id", None, {
        "on_hand_qty": _non_negative,
        "days_to_stockout": _non_negative,
        "demand_per_day": _non_negative,
        "demand_stddev_per_day": _non_negative,
        "horizon_days": _non_negative,
        "stockout_probability": _in_unit_interval,
        "severity": lambda s: s in ("critical", "warning", "ok"),
    }),
    "supplier_performance": ("supplier_id", {s.supplier_id for s in SUPPLIERS}, {
        "on_time_rate": _in_unit_interval,
        "shipments_created": _non_negative,
        "avg_actual_lead_time_days": _non_negative,
        "avg_delay_days": _non_negative,
        "in_transit": _non_negative,
        "overdue": _non_negative,
    }),
    "dc_utilization": ("dc_id", {d.dc_id for d in DCS}, {
        "utilization": _non_negative,
        "volume_m3": _non_negative,
        "inbound_m3": _non_negative,
        "projected_utilization": _non_negative,
        "status": lambda s: s in ("critical", "high", "ok"),
    }),
    "regional_fulfillment": ("region_id", {r.region_id for r in REGIONS}, {
        "fill_rate": _in_unit_interval,
        "order_fill_rate": _in_unit_interval,
        "revenue": _non_negative,
        "units_fulfilled": _non_negative,
    }),
}


def kpi_sanity_problems(kpi: str, snapshot: dict | None) -> list[str]:
    """What is wrong with one KPI snapshot (empty list: sane). Pure, so the rules are unit-testable."""
    if snapshot is None:
        return [f"{kpi_key(kpi)} is missing from Redis"]
    key_field, required_ids, predicates = SANITY[kpi]
    rows = snapshot.get("rows")
    if not isinstance(rows, list):
        return [f"{kpi_key(kpi)} has no rows list"]
    problems = []
    if kpi == "supplier_performance":  # overdue shipments are a subset of those in transit
        over = [row.get(key_field) for row in rows if (row.get("overdue") or 0) > (row.get("in_transit") or 0)]
        if over:
            problems.append(f"overdue > in_transit for {len(over)} rows (e.g. {over[0]})")
    if required_ids is not None:
        missing = required_ids - {row.get(key_field) for row in rows}
        if missing:
            problems.append(f"missing {key_field}: {', '.join(sorted(missing))}")
    for field, ok in predicates.items():
        bad = [row.get(key_field) for row in rows if not ok(row.get(field))]
        if bad:
            problems.append(f"{field} out of range for {len(bad)} rows (e.g. {bad[0]})")
    return problems


def _kpi_check(kpi: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=f"kpi_{kpi}",
        name="sane_values",
        description="The Redis snapshot is complete and its values are in range "
        "(utilization >= 0, rates within [0, 1], every DC / region / supplier present).",
    )
    def check(redis: RedisResource) -> dg.AssetCheckResult:
        raw = redis.client().get(redis.key(kpi_key(kpi)))
        snapshot = json.loads(raw) if raw else None
        problems = kpi_sanity_problems(kpi, snapshot)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "rows": len(snapshot["rows"]) if snapshot else 0,
                "as_of": (snapshot or {}).get("as_of", ""),
                "problems": dg.MetadataValue.json(problems),
            },
        )

    return check


KPI_CHECKS = [_kpi_check(kpi) for kpi in SANITY]
