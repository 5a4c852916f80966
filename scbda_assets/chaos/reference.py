"""A plain-Python reference implementation of the five KPI formulas (SPEC §9), straight from raw documents (used by
the KPI tests and the chaos lane's invariant checker).

Independent of the MongoDB pipelines, the history layer and the Spark SQL: it applies the same documented rules
(half-open windows, latest snapshot with ties broken by the greatest snapshot_id, requested demand, 7-day demand
with history_days, per-UTC-day spread, shipments in transit at T, malformed documents and unknown ids skipped) to
the raw documents of both stores (the caller passes every document once: hot and archived alike), so the two can be
compared field by field.

Well-formed, for the history window (demand, shipments), means the contract's schema (exact fields and BSON types,
as ``scbda_assets.contract``; a number is an int, long or double): a document is then counted the same before and
after archival.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict

import math

import numpy as np

from scbda_assets.decisions import forecast, inputs, risk
from scbda_assets.domain import demand
from scbda_assets.domain.reference import DCS, SKUS

DAY_S = 86400.0
ORDER_FIELDS = {"order_id": str, "sku_id": str, "dc_id": str, "region_id": str, "requested_qty": int,
                "fulfilled_qty": int, "lost_qty": int, "order_value": float, "lost_revenue": float, "priority": str,
                "order_ts": dt.datetime, "ingested_at": dt.datetime}
SHIPMENT_FIELDS = {"shipment_id": str, "sku_id": str, "supplier_id": str, "dc_id": str, "quantity": int,
                   "planned_lead_time_days": float, "shipment_ts": dt.datetime, "expected_arrival_ts": dt.datetime,
                   "actual_arrival_ts": dt.datetime, "status": str, "ingested_at": dt.datetime}


def schema_ok(doc: dict, fields: dict, nullable: tuple[str, ...] = ()) -> bool:
    """The contract's $jsonSchema in Python: exactly these fields (plus _id), each of its type (a float field takes
    any number, an int field only whole ones; a bool is neither), null only where allowed."""
    if set(doc) - {"_id"} != set(fields):
        return False
    for name, kind in fields.items():
        value = doc[name]
        if value is None:
            if name not in nullable:
                return False
        elif kind is int:
            if not _whole(value):
                return False
        elif kind is float:
            if not _number(value):
                return False
        elif not isinstance(value, kind) or isinstance(value, bool):
            return False
    return True


def _forecast_law(hourly: dict, earliest: dt.datetime | None, as_of: dt.datetime) -> dict:
    """Per domain pair: horizon_days -> (mean, variance ratio, next 24 h, next 7 d), from the raw orders' hourly
    units (not the history layer) through the forecast model (tested on its own in decisions/)."""
    last = as_of.replace(minute=0, second=0, microsecond=0)
    if earliest is None:
        return {}
    first = max(last - dt.timedelta(days=inputs.HISTORY_DAYS), earliest.replace(minute=0, second=0, microsecond=0))
    n_hours = int((last - first).total_seconds() // 3600)
    if n_hours <= 0:
        return {}
    index = {(SKUS[k].sku_id, DCS[d].dc_id): p for p, (k, d) in enumerate(zip(demand.PAIR_SKU, demand.PAIR_DC))}
    units = np.zeros((demand.N_PAIRS, n_hours))
    for (sku, dc, hour), quantity in hourly.items():
        h = int((hour - first).total_seconds() // 3600)
        if (sku, dc) in index and 0 <= h < n_hours:
            units[index[(sku, dc)], h] += quantity
    hours = np.datetime64(first.replace(tzinfo=None), "h") + np.arange(n_hours) * np.timedelta64(1, "h")
    model = forecast.fit(units, hours)
    cum = forecast.cumulative_from(model, np.datetime64(as_of.replace(tzinfo=None), "ms"), inputs.HORIZON_HOURS)

    def at(p: int):
        def law(horizon_days: float):
            x = min(horizon_days * 24, inputs.HORIZON_HOURS)
            a = int(math.floor(x))
            b = min(a + 1, inputs.HORIZON_HOURS)
            mu = cum[p, a] + (x - a) * (cum[p, b] - cum[p, a])
            level = model.level_units[p]
            return (mu, model.dispersion[p] * (1 + (mu / level if level > 0 else 0.0)), cum[p, 24], cum[p, 168])
        return law

    return {pair: at(p) for pair, p in index.items()}


def _expected_shortfall(on_hand: float, mu: float, ratio: float) -> float:
    """E[max(X − on_hand, 0)] = μ − Σ_{k < on_hand} P(X > k), summed in full."""
    if mu <= 0:
        return 0.0
    stock = int(math.floor(max(on_hand, 0)))
    served = float(risk.stockout_probability(np.arange(stock), np.full(stock, mu), np.full(stock, ratio)).sum())
    return max(mu - served, 0.0)


WINDOWS = {"inventory_level": 15, "stockout_risk": 15, "supplier_performance": 30, "dc_utilization": 15,
           "regional_fulfillment": 15}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


def _in(ts, start, end) -> bool:
    return isinstance(ts, dt.datetime) and start <= ts < end


@dataclasses.dataclass
class OrderDemand:
    """The history window's inputs: the earliest order time, 7 days of requested units per (sku, dc), and requested
    units per (sku, dc, UTC day) over ``days`` (the 7 whole days before as-of's day, from the first order's hour)."""

    earliest: dt.datetime | None
    week: dict[tuple[str, str], int]
    per_day: dict[tuple[str, str, dt.datetime], int]
    days: list[dt.datetime]
    hourly: dict[tuple[str, str, dt.datetime], int]  # requested units per (sku, dc, hour) the forecast is fitted on


def demand_days(earliest: dt.datetime | None, as_of: dt.datetime) -> list[dt.datetime]:
    today = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    first_hour = earliest.replace(minute=0, second=0, microsecond=0) if earliest else None
    days = [today - dt.timedelta(days=7 - i) for i in range(7)]
    return [d for d in days if first_hour is not None and d >= first_hour]


def order_demand(orders: list[dict], as_of: dt.datetime) -> OrderDemand:
    """7 days of requested demand over well-formed orders of both stores (from documents)."""
    order_times = [o["order_ts"] for o in orders if isinstance(o.get("order_ts"), dt.datetime)]
    earliest = min(order_times) if order_times else None
    days = demand_days(earliest, as_of)
    week, per_day, hourly = defaultdict(int), defaultdict(int), defaultdict(int)
    fit_from, fit_to = forecast_hours(as_of)
    for o in orders:
        if not schema_ok(o, ORDER_FIELDS):
            continue
        if as_of - dt.timedelta(days=7) <= o["order_ts"] < as_of:
            week[(o["sku_id"], o["dc_id"])] += o["requested_qty"]
        if fit_from <= o["order_ts"] < fit_to:
            hourly[(o["sku_id"], o["dc_id"], o["order_ts"].replace(minute=0, second=0, microsecond=0))] += \
                o["requested_qty"]
        day = o["order_ts"].replace(hour=0, minute=0, second=0, microsecond=0)
        if day in days:
            per_day[(o["sku_id"], o["dc_id"], day)] += o["requested_qty"]
    return OrderDemand(earliest, week, per_day, days, dict(hourly))


def forecast_hours(as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The hours the forecast is fitted on: the HISTORY_DAYS whole hours before as-of's hour."""
    last = as_of.replace(minute=0, second=0, microsecond=0)
    return last - dt.timedelta(days=inputs.HISTORY_DAYS), last


def reference_kpis(facts: dict[str, list[dict]], dims: dict[str, list[dict]], as_of: dt.datetime,
                   supplier_days: int = 30, demand: OrderDemand | None = None) -> dict:
    """``demand``: the history window computed by the caller (e.g. columnar, over millions of orders); then
    ``facts["orders_fact"]`` needs only the orders of the live window."""
    skus = {d["sku_id"]: d for d in dims["skus_dim"]}
    dcs = {d["dc_id"]: d for d in dims["dcs_dim"]}
    regions = {d["region_id"]: d for d in dims["regions_dim"]}
    suppliers = {d["supplier_id"]: d for d in dims["suppliers_dim"]}
    start15 = as_of - dt.timedelta(minutes=15)
    start30 = as_of - dt.timedelta(minutes=30)

    snaps = defaultdict(list)
    for s in facts["inventory_fact"]:
        if (_in(s.get("inventory_ts"), start15, as_of) and isinstance(s.get("snapshot_id"), str)
                and isinstance(s.get("sku_id"), str) and isinstance(s.get("dc_id"), str)
                and _whole(s.get("on_hand_qty")) and _whole(s.get("safety_stock"))
                and _whole(s.get("reorder_point"))):
            snaps[(s["sku_id"], s["dc_id"])].append(s)
    pairs = {}
    for (sku, dc), items in snaps.items():
        if sku in skus and dc in dcs:
            latest = max(items, key=lambda s: (s["inventory_ts"], s["snapshot_id"]))
            pairs[(sku, dc)] = (latest, sum(s["on_hand_qty"] for s in items) / len(items))

    orders = defaultdict(lambda: {"orders": 0, "req": 0, "ful": 0, "rev": 0.0, "lost": 0.0, "full": 0})
    for o in facts["orders_fact"]:
        if _in(o.get("order_ts"), start15, as_of) and schema_ok(o, ORDER_FIELDS):  # one definition of a counted order
            agg = orders[(o["sku_id"], o["dc_id"])]
            agg["orders"] += 1
            agg["req"] += o["requested_qty"]
            agg["ful"] += o["fulfilled_qty"]
            agg["rev"] += o["order_value"]
            agg["lost"] += o["lost_revenue"]
            agg["full"] += o["fulfilled_qty"] == o["requested_qty"]

    history = demand if demand is not None else order_demand(facts["orders_fact"], as_of)
    earliest, week, per_day, days = history.earliest, history.week, history.per_day, history.days
    history_days = 1 / 24 if earliest is None else max(1 / 24, min(7.0, (as_of - earliest).total_seconds() / DAY_S))

    good_shipments = [s for s in facts["shipments_fact"] if schema_ok(s, SHIPMENT_FIELDS, ("actual_arrival_ts",))]

    def in_transit(s):
        return s["shipment_ts"] < as_of and (s["actual_arrival_ts"] is None or s["actual_arrival_ts"] >= as_of)

    next_receipt = {}
    for s in good_shipments:
        if in_transit(s):
            key = (s["sku_id"], s["dc_id"])
            next_receipt[key] = min(next_receipt.get(key, s["expected_arrival_ts"]), s["expected_arrival_ts"])

    law = _forecast_law(history.hourly, earliest, as_of)
    inventory_level, stockout = [], []
    for (sku, dc), (latest, avg) in sorted(pairs.items(), key=lambda item: (item[0][1], item[0][0])):
        base = {"sku_id": sku, "dc_id": dc, "product_name": skus[sku]["product_name"],
                "category": skus[sku]["category"], "dc_name": dcs[dc]["dc_name"], "region_id": dcs[dc]["region_id"],
                "on_hand_qty": latest["on_hand_qty"]}
        on_hand = latest["on_hand_qty"]
        demand = week.get((sku, dc), 0) / history_days
        days_to = on_hand / demand if demand > 0 else None
        inventory_level.append({**base, "avg_on_hand_qty": avg, "safety_stock": float(latest["safety_stock"]),
                                "reorder_point": float(latest["reorder_point"]),
                                "below_safety_stock": on_hand < latest["safety_stock"], "days_of_cover": days_to})
        units = [per_day.get((sku, dc, d), 0) for d in days]
        spread = statistics.stdev(units) if len(units) >= 2 else None
        receipt = next_receipt.get((sku, dc))
        horizon = (max((receipt - as_of).total_seconds() / DAY_S, 0.0) if receipt is not None
                   else float(skus[sku]["lead_time_days"]))
        fc = law.get((sku, dc))
        if fc is None:  # no whole hour of history: the 7-day mean, Poisson
            mu, ratio, next_24h, next_7d = demand * horizon, 1.0, None, None
        else:
            mu, ratio, next_24h, next_7d = fc(horizon)
        probability = float(risk.stockout_probability(on_hand, mu, ratio))
        at_risk = _expected_shortfall(on_hand, mu, ratio)
        severity = "critical" if probability >= 0.5 else "warning" if probability >= 0.1 else "ok"
        days_severity = "ok" if days_to is None or days_to >= 7 else "critical" if days_to < 2 else "warning"
        live = orders[(sku, dc)]["req"] * 1440 / 15 if (sku, dc) in orders else 0.0
        on_order = latest.get("on_order_qty")
        stockout.append({
            **base, "on_order_qty": on_order if _whole(on_order) else None,
            "demand_per_day": float(demand), "history_days": float(history_days),
            "demand_stddev_per_day": spread, "live_demand_per_day": float(live),
            "forecast_24h_units": next_24h, "forecast_7d_units": next_7d, "days_to_stockout": days_to,
            "projected_stockout_ts": _iso(as_of + dt.timedelta(days=days_to)) if days_to is not None else None,
            "next_receipt_ts": _iso(receipt) if receipt is not None else None,
            "horizon_days": horizon, "horizon_demand_units": mu, "demand_variance_ratio": ratio,
            "stockout_probability": probability, "demand_at_risk_units": at_risk,
            "demand_at_risk_pkr": at_risk * skus[sku]["unit_cost"],
            "stockout_before_receipt": days_to is not None and days_to < horizon, "severity": severity,
            "days_severity": days_severity})
    stockout.sort(key=lambda r: (r["days_to_stockout"] is None, r["days_to_stockout"] or 0, r["dc_id"], r["sku_id"]))

    hist_start = as_of - dt.timedelta(days=supplier_days)
    supplier_rows = []
    for sid in sorted(suppliers):
        mine = [s for s in good_shipments if s["supplier_id"] == sid]
        planned = [s["planned_lead_time_days"] for s in mine if hist_start <= s["shipment_ts"] < as_of]
        got = [s for s in mine if s["actual_arrival_ts"] is not None and hist_start <= s["actual_arrival_ts"] < as_of]
        lead = [(s["actual_arrival_ts"] - s["shipment_ts"]).total_seconds() / DAY_S for s in got]
        delay = [max(0.0, (s["actual_arrival_ts"] - s["expected_arrival_ts"]).total_seconds() / DAY_S) for s in got]
        transit = [s for s in mine if in_transit(s)]
        supplier_rows.append({
            "supplier_id": sid, "supplier_name": suppliers[sid]["supplier_name"],
            "supplier_type": suppliers[sid]["supplier_type"],
            "reliability_score": suppliers[sid]["reliability_score"],
            "shipments_created": len(planned),
            "avg_planned_lead_time_days": statistics.fmean(planned) if planned else None,
            "stddev_planned_lead_time_days": statistics.stdev(planned) if len(planned) >= 2 else None,
            "shipments_received": len(got),
            "avg_actual_lead_time_days": statistics.fmean(lead) if lead else None,
            "stddev_actual_lead_time_days": statistics.stdev(lead) if len(lead) >= 2 else None,
            "on_time_rate": (sum(s["actual_arrival_ts"] <= s["expected_arrival_ts"] for s in got) / len(got)
                             if got else None),
            "avg_delay_days": statistics.fmean(delay) if delay else None,
            "in_transit": len(transit),
            "overdue": sum(s["expected_arrival_ts"] < as_of for s in transit),
            "created_30m": sum(start30 <= s["shipment_ts"] < as_of for s in mine),
            "received_30m": sum(s["actual_arrival_ts"] is not None and start30 <= s["actual_arrival_ts"] < as_of
                                for s in mine),
        })

    volume, inbound = defaultdict(float), defaultdict(float)
    for (sku, dc), (latest, _) in pairs.items():
        volume[dc] += latest["on_hand_qty"] * skus[sku]["storage_m3"]
    for s in good_shipments:
        if in_transit(s) and s["sku_id"] in skus:
            inbound[s["dc_id"]] += s["quantity"] * skus[s["sku_id"]]["storage_m3"]
    dc_rows = []
    for dc in sorted(dcs):
        d = dcs[dc]
        util = volume[dc] / d["capacity_m3"] if d["capacity_m3"] > 0 else None
        status = "ok" if util is None else "critical" if util >= 0.90 else "high" if util > 0.85 else "ok"
        dc_rows.append({"dc_id": dc, "dc_name": d["dc_name"], "region_id": d["region_id"], "city": d["city"],
                        "latitude": d["latitude"], "longitude": d["longitude"], "volume_m3": volume[dc],
                        "capacity_m3": float(d["capacity_m3"]), "utilization": util, "status": status,
                        "over_threshold": util is not None and util > 0.85, "inbound_m3": inbound[dc],
                        "projected_utilization": (volume[dc] + inbound[dc]) / d["capacity_m3"]
                        if d["capacity_m3"] > 0 else None})

    by_region = defaultdict(lambda: {"orders": 0, "req": 0, "ful": 0, "rev": 0.0, "lost": 0.0, "full": 0})
    for (sku, dc), agg in orders.items():
        if sku in skus and dc in dcs:
            target = by_region[dcs[dc]["region_id"]]
            for field in target:
                target[field] += agg[field]
    region_rows = []
    for rid in sorted(regions):
        agg = by_region[rid]
        region_rows.append({
            "region_id": rid, "region_name": regions[rid]["region_name"], "orders": agg["orders"],
            "units_requested": agg["req"], "units_fulfilled": agg["ful"],
            "fill_rate": agg["ful"] / agg["req"] if agg["req"] > 0 else None,
            "revenue": agg["rev"], "lost_revenue": agg["lost"],
            "avg_order_value": agg["rev"] / agg["orders"] if agg["orders"] else None,
            "orders_in_full": agg["full"],
            "order_fill_rate": agg["full"] / agg["orders"] if agg["orders"] else None,
        })

    return {"inventory_level": inventory_level, "stockout_risk": stockout, "supplier_performance": supplier_rows,
            "dc_utilization": dc_rows, "regional_fulfillment": region_rows}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def same_value(a, b, field: str = "") -> bool:
    """A KPI field equal to its reference value: ISO times to the millisecond, the stockout probability to 1e-6
    (Spark's sum of the count law vs SciPy's), demand at risk to 1e-4 relative (wide laws are summed over blocks of a
    few units, kpis/sql.py), other floats to 1e-9 relative, everything else exactly."""
    if field.endswith("_ts") and a is not None and b is not None:
        return abs(dt.datetime.fromisoformat(a) - dt.datetime.fromisoformat(b)) <= dt.timedelta(milliseconds=1)
    if field == "stockout_probability":
        return a is not None and b is not None and abs(a - b) < 1e-6
    if field.startswith("demand_at_risk"):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def order_demand_columns(orders, as_of: dt.datetime) -> OrderDemand:
    """``order_demand`` over an Arrow table of well-formed orders (sku_id, dc_id, order_ts, requested_qty): the
    same sums, columnar, for the millions of orders of a run at 100x."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if orders.num_rows == 0:
        return OrderDemand(None, {}, {}, [], {})
    earliest = pc.min(orders["order_ts"]).as_py()
    days = demand_days(earliest, as_of)
    ts = orders["order_ts"]
    in_week = pc.and_(pc.greater_equal(ts, pa.scalar(as_of - dt.timedelta(days=7), ts.type)),
                      pc.less(ts, pa.scalar(as_of, ts.type)))
    week_rows = orders.filter(in_week).group_by(["sku_id", "dc_id"]).aggregate([("requested_qty", "sum")])
    week = {(s, d): int(q) for s, d, q in zip(*(week_rows[c].to_pylist()
                                                for c in ("sku_id", "dc_id", "requested_qty_sum")))}
    per_day: dict[tuple[str, str, dt.datetime], int] = {}
    for day in days:
        rows = orders.filter(pc.and_(pc.greater_equal(ts, pa.scalar(day, ts.type)),
                                     pc.less(ts, pa.scalar(day + dt.timedelta(days=1), ts.type))))
        summed = rows.group_by(["sku_id", "dc_id"]).aggregate([("requested_qty", "sum")])
        for s, d, q in zip(*(summed[c].to_pylist() for c in ("sku_id", "dc_id", "requested_qty_sum"))):
            per_day[(s, d, day)] = int(q)
    fit_from, fit_to = forecast_hours(as_of)
    fitted = orders.filter(pc.and_(pc.greater_equal(ts, pa.scalar(fit_from, ts.type)),
                                   pc.less(ts, pa.scalar(fit_to, ts.type))))
    fitted = fitted.append_column("hour", pc.floor_temporal(fitted["order_ts"], unit="hour"))
    summed = fitted.group_by(["sku_id", "dc_id", "hour"]).aggregate([("requested_qty", "sum")])
    hourly = {(s, d, h): int(q) for s, d, h, q in zip(*(summed[c].to_pylist()
                                                      for c in ("sku_id", "dc_id", "hour", "requested_qty_sum")))}
    return OrderDemand(earliest, week, per_day, days, hourly)
