"""A plain-Python reference implementation of the five KPI formulas (SPEC §9), straight from raw documents.

Independent of the MongoDB pipelines and the Spark SQL: it applies the same documented rules (half-open windows,
latest snapshot with ties broken by the greatest snapshot_id, requested demand, malformed documents and unknown
ids skipped) so the two can be compared field by field.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

WINDOWS = {"inventory_level": 15, "stockout_risk": 15, "supplier_performance": 30, "dc_utilization": 15,
           "regional_fulfillment": 15}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


def _in(ts, start, end) -> bool:
    return isinstance(ts, dt.datetime) and start <= ts < end


def reference_kpis(facts: dict[str, list[dict]], dims: dict[str, list[dict]], as_of: dt.datetime) -> dict:
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
                and _whole(s.get("on_hand_qty")) and _number(s.get("safety_stock"))
                and _number(s.get("reorder_point"))):
            snaps[(s["sku_id"], s["dc_id"])].append(s)
    pairs = {}
    for (sku, dc), items in snaps.items():
        if sku in skus and dc in dcs:
            latest = max(items, key=lambda s: (s["inventory_ts"], s["snapshot_id"]))
            pairs[(sku, dc)] = (latest, sum(s["on_hand_qty"] for s in items) / len(items))

    orders = defaultdict(lambda: {"orders": 0, "req": 0, "ful": 0, "rev": 0.0, "lost": 0.0})
    for o in facts["orders_fact"]:
        if (_in(o.get("order_ts"), start15, as_of) and isinstance(o.get("sku_id"), str)
                and isinstance(o.get("dc_id"), str) and _whole(o.get("requested_qty"))
                and _whole(o.get("fulfilled_qty")) and _number(o.get("order_value"))
                and _number(o.get("lost_revenue")) and isinstance(o.get("ingested_at"), dt.datetime)):
            agg = orders[(o["sku_id"], o["dc_id"])]
            agg["orders"] += 1
            agg["req"] += o["requested_qty"]
            agg["ful"] += o["fulfilled_qty"]
            agg["rev"] += o["order_value"]
            agg["lost"] += o["lost_revenue"]

    inventory_level, stockout = [], []
    for (sku, dc), (latest, avg) in sorted(pairs.items(), key=lambda item: (item[0][1], item[0][0])):
        base = {"sku_id": sku, "dc_id": dc, "product_name": skus[sku]["product_name"],
                "category": skus[sku]["category"], "dc_name": dcs[dc]["dc_name"], "region_id": dcs[dc]["region_id"],
                "on_hand_qty": latest["on_hand_qty"]}
        inventory_level.append({**base, "avg_on_hand_qty": avg, "safety_stock": float(latest["safety_stock"]),
                                "reorder_point": float(latest["reorder_point"]),
                                "below_safety_stock": latest["on_hand_qty"] < latest["safety_stock"]})
        demand = orders[(sku, dc)]["req"] * 1440 / 15 if (sku, dc) in orders else 0.0
        days = latest["on_hand_qty"] / demand if demand > 0 else None
        severity = "ok" if days is None or days >= 7 else "critical" if days < 2 else "warning"
        stockout.append({**base, "demand_per_day": float(demand), "days_to_stockout": days, "severity": severity})
    stockout.sort(key=lambda r: (r["days_to_stockout"] is None, r["days_to_stockout"] or 0, r["dc_id"], r["sku_id"]))

    created, received = defaultdict(list), defaultdict(list)
    for s in facts["shipments_fact"]:
        if not isinstance(s.get("supplier_id"), str):
            continue
        if _in(s.get("shipment_ts"), start30, as_of) and _number(s.get("planned_lead_time_days")):
            created[s["supplier_id"]].append(float(s["planned_lead_time_days"]))
        if (_in(s.get("actual_arrival_ts"), start30, as_of) and isinstance(s.get("shipment_ts"), dt.datetime)
                and isinstance(s.get("expected_arrival_ts"), dt.datetime)):
            received[s["supplier_id"]].append(s)
    supplier_rows = []
    for sid in sorted(suppliers):
        planned, got = created.get(sid, []), received.get(sid, [])
        lead = [(s["actual_arrival_ts"] - s["shipment_ts"]).total_seconds() / 86400 for s in got]
        supplier_rows.append({
            "supplier_id": sid, "supplier_name": suppliers[sid]["supplier_name"],
            "supplier_type": suppliers[sid]["supplier_type"],
            "reliability_score": suppliers[sid]["reliability_score"],
            "shipments_created": len(planned),
            "avg_planned_lead_time_days": statistics.fmean(planned) if planned else None,
            "stddev_planned_lead_time_days": statistics.stdev(planned) if len(planned) >= 2 else None,
            "shipments_received": len(got),
            "avg_actual_lead_time_days": statistics.fmean(lead) if lead else None,
            "on_time_rate": (sum(s["actual_arrival_ts"] <= s["expected_arrival_ts"] for s in got) / len(got)
                             if got else None),
        })

    volume = defaultdict(float)
    for (sku, dc), (latest, _) in pairs.items():
        volume[dc] += latest["on_hand_qty"] * skus[sku]["storage_m3"]
    dc_rows = []
    for dc in sorted(dcs):
        d = dcs[dc]
        util = volume[dc] / d["capacity_m3"] if d["capacity_m3"] > 0 else None
        status = "ok" if util is None else "critical" if util >= 0.90 else "high" if util > 0.85 else "ok"
        dc_rows.append({"dc_id": dc, "dc_name": d["dc_name"], "region_id": d["region_id"], "city": d["city"],
                        "latitude": d["latitude"], "longitude": d["longitude"], "volume_m3": volume[dc],
                        "capacity_m3": float(d["capacity_m3"]), "utilization": util, "status": status,
                        "over_threshold": util is not None and util > 0.85})

    by_region = defaultdict(lambda: {"orders": 0, "req": 0, "ful": 0, "rev": 0.0, "lost": 0.0})
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
        })

    return {"inventory_level": inventory_level, "stockout_risk": stockout, "supplier_performance": supplier_rows,
            "dc_utilization": dc_rows, "regional_fulfillment": region_rows}
