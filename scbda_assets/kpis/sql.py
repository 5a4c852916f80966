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
    "critical_probability": 0.5,  # settings: SCBDA_STOCKOUT_CRITICAL_PROBABILITY (compute_kpis(thresholds=...))
    "warning_probability": 0.1,  # settings: SCBDA_STOCKOUT_WARNING_PROBABILITY
    "critical_days": RULES.stockout_critical_days,
    "warning_days": RULES.stockout_warning_days,
    "utilization_high": RULES.utilization_high,
    "utilization_critical": RULES.utilization_critical,
}

# Snapshot pairs with a known SKU and DC, with the descriptive columns every per-pair KPI shows.
_PAIRS = """
    SELECT i.sku_id, i.dc_id, s.product_name, s.category, s.storage_m3, s.lead_time_days, s.unit_cost,
           d.dc_name, d.region_id,
           i.on_hand_qty, i.on_order_qty, i.sum_on_hand, i.snapshots, i.safety_stock, i.reorder_point
    FROM {inventory} i
    JOIN {skus} s ON s.sku_id = i.sku_id
    JOIN {dcs} d ON d.dc_id = i.dc_id
"""

# Shipments in transit at the end of the data E: created before E and not received before E.
_IN_TRANSIT = "(shipment_ms < :end_ms AND (actual_ms IS NULL OR actual_ms >= :end_ms))"
_DAY_MS = "86400000.0D"

INVENTORY_LEVEL = f"""
WITH pairs AS ({_PAIRS}),
demand AS (
    SELECT p.*, COALESCE(h.units_requested, 0) / :history_days AS demand_per_day
    FROM pairs p LEFT JOIN {{demand}} h ON h.sku_id = p.sku_id AND h.dc_id = p.dc_id
)
SELECT sku_id, dc_id, product_name, category, dc_name, region_id,
       on_hand_qty,
       sum_on_hand / snapshots AS avg_on_hand_qty,
       safety_stock, reorder_point,
       on_hand_qty < safety_stock AS below_safety_stock,
       CASE WHEN demand_per_day > 0 THEN on_hand_qty / demand_per_day END AS days_of_cover
FROM demand
"""

def _lgamma(x: str) -> str:
    """ln Γ(x) for x > 0 as SQL (Spark SQL has none): Stirling's series at y = x + 8 (error < 1e-12), shifted back
    by the logs of x … x + 7."""
    y = f"(({x}) + 8.0D)"
    shift = " + ".join(f"LN(({x}) + {i}.0D)" for i in range(8))
    return (f"(({y} - 0.5D) * LN({y}) - {y} + 0.91893853320467274D + 1.0D / (12.0D * {y}) "
            f"- 1.0D / (360.0D * POW({y}, 3)) + 1.0D / (1260.0D * POW({y}, 5)) - ({shift}))")


# ln P(X = k) of the horizon's demand: Poisson(mu) when ratio <= 1 + 1e-6, else negative binomial with mean mu and
# variance ratio × mu (n = mu / (ratio − 1), p = 1 / ratio). ``decisions/risk.py`` is the same law with SciPy.
def _log_pmf(k: str) -> str:
    poisson = f"({k}) * LN(mu) - mu - {_lgamma(f'({k}) + 1.0D')}"
    negative_binomial = (f"{_lgamma(f'({k}) + nb_n')} - {_lgamma('nb_n')} - {_lgamma(f'({k}) + 1.0D')} "
                         f"+ nb_n * LN(1.0D / ratio) + ({k}) * LN(1.0D - 1.0D / ratio)")
    return f"IF(poisson, {poisson}, {negative_binomial})"


# Mass of the law summed over a grid of blocks of ``step`` integers each (step 1 = exact) covering
# [lo, hi] = [mu − 12 sd, mu + 25 sd + 40 ratio] (the right tail is the heavier, ~ e^(−k / ratio)):
# P(X > on_hand) = mass above on_hand / total mass, demand at risk = E[max(X − on_hand, 0)]. At most
# :grid_blocks blocks per pair, whatever the rate.
_BLOCK = "(lo + i * step)"
_MID = f"({_BLOCK} + (step - 1) / 2.0D)"
_ABOVE = f"LEAST(GREATEST({_BLOCK} + step - 1 - FLOOR(on_hand_qty), 0), step)"  # integers of the block > on_hand
_COUNT_SUMS = f"""
    aggregate(sequence(0, CAST(blocks AS INT) - 1), named_struct('mass', 0.0D, 'above', 0.0D, 'short', 0.0D),
              (acc, i) -> named_struct(
                  'mass', acc.mass + step * EXP({_log_pmf(_MID)}),
                  'above', acc.above + {_ABOVE} * EXP({_log_pmf(_MID)}),
                  'short', acc.short + EXP({_log_pmf(_MID)}) * IF({_BLOCK} > FLOOR(on_hand_qty),
                      step * ({_MID} - FLOOR(on_hand_qty)), {_ABOVE} * ({_ABOVE} + 1) / 2.0D)))
"""

def count_law(source: str) -> str:
    """SELECT *, stockout_probability, demand_at_risk_units FROM ``source`` (columns on_hand_qty, mu, ratio)."""
    return f"""
    SELECT *, IF(mu > 0, LEAST(GREATEST(sums.above / sums.mass, 0.0D), 1.0D), 0.0D) AS stockout_probability,
           IF(mu > 0, sums.short / sums.mass, 0.0D) AS demand_at_risk_units
    FROM (
        SELECT *, IF(mu > 0, {_COUNT_SUMS}, NULL) AS sums
        FROM (
            SELECT *, CEIL((hi - lo + 1.0D) / step) AS blocks
            FROM (
                SELECT *, GREATEST(CEIL((hi - lo + 1.0D) / :grid_blocks), 1.0D) AS step
                FROM (
                    SELECT *, ratio <= 1.000001D AS poisson, mu / GREATEST(ratio - 1.0D, 1.0E-300D) AS nb_n,
                           GREATEST(FLOOR(mu - 12.0D * SQRT(ratio * mu) - 10.0D), 0.0D) AS lo,
                           CEIL(mu + 25.0D * SQRT(ratio * mu) + 40.0D * ratio + 20.0D) AS hi
                    FROM {source}
                )
            )
        )
    )
"""


# Expected demand to the horizon: the forecast interpolated between whole hours (no forecast: the 7-day mean);
# variance / mean: the hourly dispersion plus the uncertainty of the level (``forecast.variance_ratio``).
STOCKOUT_RISK = f"""
WITH pairs AS ({_PAIRS}),
demand AS (
    SELECT p.*,
           COALESCE(h.units_requested, 0) / :history_days AS demand_per_day,
           COALESCE(o.units_requested, 0) * (1440.0D / :window_minutes) AS live_demand_per_day
    FROM pairs p
    LEFT JOIN {{demand}} h ON h.sku_id = p.sku_id AND h.dc_id = p.dc_id
    LEFT JOIN {{orders}} o ON o.sku_id = p.sku_id AND o.dc_id = p.dc_id
),
per_day AS (
    SELECT p.sku_id, p.dc_id, c.day, COALESCE(dd.units_requested, 0) AS units
    FROM pairs p CROSS JOIN {{covered_days}} c
    LEFT JOIN {{daily_demand}} dd ON dd.sku_id = p.sku_id AND dd.dc_id = p.dc_id AND dd.day = c.day
),
spread AS (
    SELECT sku_id, dc_id, CASE WHEN COUNT(*) >= 2 THEN STDDEV_SAMP(CAST(units AS DOUBLE)) END AS demand_stddev_per_day
    FROM per_day GROUP BY sku_id, dc_id
),
receipts AS (
    SELECT sku_id, dc_id, MIN(expected_ms) AS next_receipt_ms FROM {{shipments}} WHERE {_IN_TRANSIT}
    GROUP BY sku_id, dc_id
),
days AS (
    SELECT d.*, s.demand_stddev_per_day, r.next_receipt_ms,
           CASE WHEN d.demand_per_day > 0 THEN d.on_hand_qty / d.demand_per_day END AS days_to_stockout,
           CASE WHEN r.next_receipt_ms IS NOT NULL THEN GREATEST((r.next_receipt_ms - :end_ms) / {_DAY_MS}, 0.0D)
                ELSE d.lead_time_days END AS horizon_days
    FROM demand d
    LEFT JOIN spread s ON s.sku_id = d.sku_id AND s.dc_id = d.dc_id
    LEFT JOIN receipts r ON r.sku_id = d.sku_id AND r.dc_id = d.dc_id
),
horizon AS (
    SELECT d.*, f.forecast_24h_units, f.forecast_7d_units,
           COALESCE(a.cum_units + (LEAST(d.horizon_days * 24.0D, :forecast_hours) - a.hour_offset)
                    * (b.cum_units - a.cum_units), d.demand_per_day * d.horizon_days) AS mu,
           COALESCE(f.dispersion, 1.0D) AS dispersion, f.level_units
    FROM days d
    LEFT JOIN {{forecast_pairs}} f ON f.sku_id = d.sku_id AND f.dc_id = d.dc_id
    LEFT JOIN {{forecast}} a ON a.sku_id = d.sku_id AND a.dc_id = d.dc_id
         AND a.hour_offset = FLOOR(LEAST(d.horizon_days * 24.0D, :forecast_hours))
    LEFT JOIN {{forecast}} b ON b.sku_id = d.sku_id AND b.dc_id = d.dc_id
         AND b.hour_offset = LEAST(FLOOR(LEAST(d.horizon_days * 24.0D, :forecast_hours)) + 1, :forecast_hours)
),
law AS (
    SELECT *, dispersion * (1.0D + IF(level_units > 0, mu / level_units, 0.0D)) AS ratio FROM horizon
),
risk AS ({count_law("law")})
SELECT sku_id, dc_id, product_name, category, dc_name, region_id, on_hand_qty, on_order_qty,
       demand_per_day, CAST(:history_days AS DOUBLE) AS history_days, demand_stddev_per_day, live_demand_per_day,
       forecast_24h_units, forecast_7d_units,
       days_to_stockout,
       CASE WHEN days_to_stockout IS NOT NULL THEN :end_ms + days_to_stockout * {_DAY_MS} END
           AS projected_stockout_ts,
       CAST(next_receipt_ms AS DOUBLE) AS next_receipt_ts,
       horizon_days,
       mu AS horizon_demand_units, ratio AS demand_variance_ratio,
       stockout_probability,
       demand_at_risk_units, demand_at_risk_units * unit_cost AS demand_at_risk_pkr,
       COALESCE(days_to_stockout < horizon_days, false) AS stockout_before_receipt,
       CASE WHEN stockout_probability >= :critical_probability THEN 'critical'
            WHEN stockout_probability >= :warning_probability THEN 'warning'
            ELSE 'ok' END AS severity,
       CASE WHEN days_to_stockout < :critical_days THEN 'critical'
            WHEN days_to_stockout < :warning_days THEN 'warning'
            ELSE 'ok' END AS days_severity
FROM risk
"""

SUPPLIER_PERFORMANCE = f"""
WITH flagged AS (
    SELECT supplier_id, planned_lead_time_days AS planned,
           shipment_ms >= :history_start_ms AND shipment_ms < :end_ms AS created,
           actual_ms >= :history_start_ms AND actual_ms < :end_ms AS received,
           (actual_ms - shipment_ms) / {_DAY_MS} AS lead_days,
           GREATEST(actual_ms - expected_ms, 0) / {_DAY_MS} AS delay_days,
           actual_ms <= expected_ms AS on_time,
           {_IN_TRANSIT} AS in_transit,
           {_IN_TRANSIT} AND expected_ms < :end_ms AS overdue,
           shipment_ms >= :live_start_ms AND shipment_ms < :end_ms AS created_live,
           actual_ms >= :live_start_ms AND actual_ms < :end_ms AS received_live
    FROM {{shipments}}
),
sums AS (
    SELECT supplier_id,
           COUNT_IF(created) AS created, AVG(IF(created, planned, NULL)) AS avg_planned,
           STDDEV_SAMP(IF(created, planned, NULL)) AS sd_planned,
           COUNT_IF(received) AS received, AVG(IF(received, lead_days, NULL)) AS avg_lead,
           STDDEV_SAMP(IF(received, lead_days, NULL)) AS sd_lead,
           COUNT_IF(received AND on_time) AS on_time, AVG(IF(received, delay_days, NULL)) AS avg_delay,
           COUNT_IF(in_transit) AS in_transit, COUNT_IF(overdue) AS overdue,
           COUNT_IF(created_live) AS created_live, COUNT_IF(received_live) AS received_live
    FROM flagged GROUP BY supplier_id
)
SELECT p.supplier_id, p.supplier_name, p.supplier_type, p.reliability_score,
       COALESCE(c.created, 0) AS shipments_created,
       c.avg_planned AS avg_planned_lead_time_days,
       CASE WHEN c.created >= 2 THEN c.sd_planned END AS stddev_planned_lead_time_days,
       COALESCE(c.received, 0) AS shipments_received,
       c.avg_lead AS avg_actual_lead_time_days,
       CASE WHEN c.received >= 2 THEN c.sd_lead END AS stddev_actual_lead_time_days,
       CASE WHEN c.received > 0 THEN c.on_time / c.received END AS on_time_rate,
       c.avg_delay AS avg_delay_days,
       COALESCE(c.in_transit, 0) AS in_transit,
       COALESCE(c.overdue, 0) AS overdue,
       COALESCE(c.created_live, 0) AS created_30m,
       COALESCE(c.received_live, 0) AS received_30m
FROM {{suppliers}} p
LEFT JOIN sums c ON c.supplier_id = p.supplier_id
"""

DC_UTILIZATION = f"""
WITH volume AS (
    SELECT dc_id, SUM(on_hand_qty * storage_m3) AS volume_m3 FROM ({_PAIRS}) GROUP BY dc_id
),
inbound AS (
    SELECT t.dc_id, SUM(t.quantity * s.storage_m3) AS inbound_m3
    FROM {{shipments}} t JOIN {{skus}} s ON s.sku_id = t.sku_id
    WHERE {_IN_TRANSIT.replace("shipment_ms", "t.shipment_ms").replace("actual_ms", "t.actual_ms")}
    GROUP BY t.dc_id
),
ratio AS (
    SELECT d.*, COALESCE(v.volume_m3, 0.0) AS volume_m3, COALESCE(i.inbound_m3, 0.0D) AS inbound_m3,
           CASE WHEN d.capacity_m3 > 0 THEN COALESCE(v.volume_m3, 0.0) / d.capacity_m3 END AS utilization
    FROM {{dcs}} d LEFT JOIN volume v ON v.dc_id = d.dc_id LEFT JOIN inbound i ON i.dc_id = d.dc_id
)
SELECT dc_id, dc_name, region_id, city, latitude, longitude, volume_m3, capacity_m3, utilization,
       CASE WHEN utilization >= :utilization_critical THEN 'critical'
            WHEN utilization > :utilization_high THEN 'high'
            ELSE 'ok' END AS status,
       COALESCE(utilization > :utilization_high, false) AS over_threshold,
       inbound_m3,
       CASE WHEN capacity_m3 > 0 THEN (volume_m3 + inbound_m3) / capacity_m3 END AS projected_utilization
FROM ratio
"""

REGIONAL_FULFILLMENT = """
WITH by_region AS (
    SELECT d.region_id,
           SUM(o.orders) AS orders, SUM(o.units_requested) AS units_requested,
           SUM(o.units_fulfilled) AS units_fulfilled, SUM(o.revenue) AS revenue, SUM(o.lost_revenue) AS lost_revenue,
           SUM(o.orders_in_full) AS orders_in_full
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
       CASE WHEN b.orders > 0 THEN b.revenue / b.orders END AS avg_order_value,
       COALESCE(b.orders_in_full, 0) AS orders_in_full,
       CASE WHEN b.orders > 0 THEN b.orders_in_full / b.orders END AS order_fill_rate
FROM {regions} g
LEFT JOIN by_region b ON b.region_id = g.region_id
"""

# Fields the SQL returns as epoch milliseconds (time zone free); compute.py turns them into ISO 8601 UTC.
TIMESTAMP_FIELDS = ("projected_stockout_ts", "next_receipt_ts")


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
