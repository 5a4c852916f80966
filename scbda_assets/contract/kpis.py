"""KPI names (SPEC §9) and the headline figures of a run (the dashboard cards and the ``kpi:history`` stream)."""

from __future__ import annotations

KPI_NAMES: tuple[str, ...] = (
    "inventory_level", "stockout_risk", "supplier_performance", "dc_utilization", "regional_fulfillment",
)

HEADLINE_FIELDS: tuple[str, ...] = (
    "total_on_hand",
    "stockout_alerts",
    "avg_on_time_rate",
    "avg_actual_lead_time_days",
    "avg_utilization",
    "revenue",
    "fill_rate",
)

# The headline figure of each KPI (Dagster plots it over materializations).
HEADLINE_OF: dict[str, str] = {
    "inventory_level": "total_on_hand",
    "stockout_risk": "stockout_alerts",
    "supplier_performance": "avg_on_time_rate",
    "dc_utilization": "avg_utilization",
    "regional_fulfillment": "revenue",
}
