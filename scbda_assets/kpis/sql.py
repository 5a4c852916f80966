"""The five KPI formulas as Spark SQL text (pure: no I/O, no Dagster). SPEC §9.

Inputs are the pre-aggregated rows of ``pushdown.py`` and the dimensions, bound as DataFrames through
``spark.sql(text, args=..., **frames)``: ``{inventory}``, ``{orders}``, ``{created}``, ``{received}``, ``{regions}``,
``{dcs}``, ``{skus}``, ``{suppliers}``. Named parameters (``:window_minutes``, thresholds) come from ``args``.

The queries have no ORDER BY: they return at most one row per (sku, dc) pair, supplier, DC or region (a few dozen),
so ``compute.py`` sorts them in Python by ``ROW_ORDER`` — cheaper than a Spark range-partitioning job per query.

Joins with the dimensions are inner for facts (rows with an unknown sku, DC or supplier id are dropped) and
outer from the dimension for the per-supplier, per-DC and per-region KPIs (every one is present, with zeros for
counts and nulls for ratios without a denominator).
"""

from __future__ import annotations

from scbda_assets.domain.reference import RULES

THRESHOLDS = {
    "critical_days": RULES.stockout_critical_days,
    "warning_days": RULES.stockout_warning_days,
    "utilization_high": RULES.utilization_high,
    "utilization_critical": RULES.utilization_critical,
}

# Snapshot pairs with a known SKU and DC, with the descriptive columns every per-pair KPI shows.
_PAIRS = """
    SELECT i.sku_id, i.dc_id, s.product_name, s.category, s.storage_m3, d.dc_name, d.region_id,
           i.on_hand_qty, i.sum_on_hand, i.snapshots, i.safety_stock, i.reorder_point
    FROM {inventory} i
    JOIN {skus} s ON s.sku_id = i.sku_id
    JOIN {dcs} d ON d.dc_id = i.dc_id
"""

INVENTORY_LEVEL = f"""
WITH pairs AS ({_PAIRS})
SELECT sku_id, dc_id, product_name, category, dc_name, region_id,
       on_hand_qty,
       sum_on_hand / snapshots AS avg_on_hand_qty,
       safety_stock, reorder_point,
       on_hand_qty < safety_stock AS below_safety_stock
FROM pairs
"""

STOCKOUT_RISK = f"""
WITH pairs AS ({_PAIRS}),
demand AS (
    SELECT p.*, COALESCE(o.units_requested, 0) * (1440.0D / :window_minutes) AS demand_per_day
    FROM pairs p LEFT JOIN {{orders}} o ON o.sku_id = p.sku_id AND o.dc_id = p.dc_id
),
days AS (
    SELECT *, CASE WHEN demand_per_day > 0 THEN on_hand_qty / demand_per_day END AS days_to_stockout FROM demand
)
SELECT sku_id, dc_id, product_name, category, dc_name, region_id, on_hand_qty, demand_per_day, days_to_stockout,
       CASE WHEN days_to_stockout < :critical_days THEN 'critical'
            WHEN days_to_stockout < :warning_days THEN 'warning'
            ELSE 'ok' END AS severity
FROM days
"""

SUPPLIER_PERFORMANCE = """
SELECT p.supplier_id, p.supplier_name, p.supplier_type, p.reliability_score,
       COALESCE(c.created, 0) AS shipments_created,
       c.sum_planned / c.created AS avg_planned_lead_time_days,
       CASE WHEN c.created >= 2
            THEN SQRT(GREATEST((c.sum_planned_sq - c.sum_planned * c.sum_planned / c.created) / (c.created - 1), 0.0D))
       END AS stddev_planned_lead_time_days,
       COALESCE(r.received, 0) AS shipments_received,
       r.sum_lead_ms / r.received / 86400000.0D AS avg_actual_lead_time_days,
       r.on_time / r.received AS on_time_rate
FROM {suppliers} p
LEFT JOIN {created} c ON c.supplier_id = p.supplier_id
LEFT JOIN {received} r ON r.supplier_id = p.supplier_id
"""

DC_UTILIZATION = f"""
WITH volume AS (
    SELECT dc_id, SUM(on_hand_qty * storage_m3) AS volume_m3 FROM ({_PAIRS}) GROUP BY dc_id
),
ratio AS (
    SELECT d.*, COALESCE(v.volume_m3, 0.0) AS volume_m3,
           CASE WHEN d.capacity_m3 > 0 THEN COALESCE(v.volume_m3, 0.0) / d.capacity_m3 END AS utilization
    FROM {{dcs}} d LEFT JOIN volume v ON v.dc_id = d.dc_id
)
SELECT dc_id, dc_name, region_id, city, latitude, longitude, volume_m3, capacity_m3, utilization,
       CASE WHEN utilization >= :utilization_critical THEN 'critical'
            WHEN utilization > :utilization_high THEN 'high'
            ELSE 'ok' END AS status,
       COALESCE(utilization > :utilization_high, false) AS over_threshold
FROM ratio
"""

REGIONAL_FULFILLMENT = """
WITH by_region AS (
    SELECT d.region_id,
           SUM(o.orders) AS orders, SUM(o.units_requested) AS units_requested,
           SUM(o.units_fulfilled) AS units_fulfilled, SUM(o.revenue) AS revenue, SUM(o.lost_revenue) AS lost_revenue
    FROM {orders} o
    JOIN {dcs} d ON d.dc_id = o.dc_id
    JOIN {skus} s ON s.sku_id = o.sku_id
    GROUP BY d.region_id
)
SELECT g.region_id, g.region_name,
       COALESCE(b.orders, 0) AS orders,
       COALESCE(b.units_requested, 0) AS units_requested,
       COALESCE(b.units_fulfilled, 0) AS units_fulfilled,
       CASE WHEN b.units_requested > 0 THEN b.units_fulfilled / b.units_requested END AS fill_rate,
       COALESCE(b.revenue, 0.0) AS revenue,
       COALESCE(b.lost_revenue, 0.0) AS lost_revenue,
       CASE WHEN b.orders > 0 THEN b.revenue / b.orders END AS avg_order_value
FROM {regions} g
LEFT JOIN by_region b ON b.region_id = g.region_id
"""


def _stockout_order(row: dict) -> tuple:
    days = row["days_to_stockout"]
    return days is None, days if days is not None else 0.0, row["dc_id"], row["sku_id"]


# How each KPI's rows are presented (Redis payload order): most urgent stock-outs first, otherwise by id.
ROW_ORDER = {
    "inventory_level": lambda row: (row["dc_id"], row["sku_id"]),
    "stockout_risk": _stockout_order,
    "supplier_performance": lambda row: row["supplier_id"],
    "dc_utilization": lambda row: row["dc_id"],
    "regional_fulfillment": lambda row: row["region_id"],
}
