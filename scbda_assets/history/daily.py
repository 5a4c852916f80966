"""``history:daily``: 30 UTC days of per-region and per-supplier trends, hot + cold (SPEC §9; no Dagster here).

Per region and UTC day, the fields of KPI 5 (an order belongs to the region of its DC; unknown SKUs and DCs are
dropped, as KPI 5 drops them); per supplier and UTC day of receipt, ``shipments_received``, ``on_time_rate`` and
``avg_actual_lead_time_days``. Every day × region and day × supplier is present (zeros, and nulls for ratios without
a denominator). The last day is the current, partial one, up to ``data_until``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import read, shipments
from scbda_assets.history.store import history_database
from scbda_assets.timeutil import DAY, floor_day, iso

DAYS = 30




def daily_history(db: Database, archive: ArchiveStore | None, *, as_of: dt.datetime, data_until: dt.datetime,
                  days: int = DAYS, raw_sums: read.SumsOf | None = None) -> dict:
    first = floor_day(data_until) - (days - 1) * DAY
    dates = [f"{first + i * DAY:%Y-%m-%d}" for i in range(days)]
    dcs = {d["dc_id"]: d.get("region_id") for d in db.dcs_dim.find({"dc_id": {"$type": "string"}})}
    skus = {d["sku_id"] for d in db.skus_dim.find({"sku_id": {"$type": "string"}})}
    regions = {r["region_id"]: r.get("region_name") for r in db.regions_dim.find({"region_id": {"$type": "string"}})}
    suppliers = {s["supplier_id"]: s.get("supplier_name")
                 for s in db.suppliers_dim.find({"supplier_id": {"$type": "string"}})}

    sums: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    for row in read.daily_pair_sums(db, archive, first, data_until, raw_sums):
        if row["sku_id"] in skus and row["dc_id"] in dcs:
            target = sums[(row["day"], dcs[row["dc_id"]])]
            for name in ("orders", "units_requested", "units_fulfilled", "revenue", "lost_revenue", "orders_in_full"):
                target[name] += row[name]
    region_rows = []
    for day in dates:
        for region_id in sorted(regions):
            s = sums.get((day, region_id), {})
            orders, requested = int(s.get("orders", 0)), int(s.get("units_requested", 0))
            in_full, revenue = int(s.get("orders_in_full", 0)), float(s.get("revenue", 0.0))
            region_rows.append({
                "date": day, "region_id": region_id, "region_name": regions[region_id],
                "orders": orders, "units_requested": requested, "units_fulfilled": int(s.get("units_fulfilled", 0)),
                "fill_rate": s["units_fulfilled"] / requested if requested else None,
                "revenue": revenue, "lost_revenue": float(s.get("lost_revenue", 0.0)),
                "avg_order_value": revenue / orders if orders else None,
                "orders_in_full": in_full, "order_fill_rate": in_full / orders if orders else None,
            })

    received: dict[tuple, list[dict]] = defaultdict(list)
    for row in shipments.window_rows(history_database(db), first, data_until):
        actual = row["actual_arrival_ts"]
        if actual is not None and first <= actual < data_until:
            received[(f"{actual:%Y-%m-%d}", row["supplier_id"])].append(row)
    supplier_rows = []
    for day in dates:
        for supplier_id in sorted(suppliers):
            got = received.get((day, supplier_id), [])
            supplier_rows.append({
                "date": day, "supplier_id": supplier_id, "supplier_name": suppliers[supplier_id],
                "shipments_received": len(got),
                "on_time_rate": sum(r["actual_arrival_ts"] <= r["expected_arrival_ts"] for r in got) / len(got)
                if got else None,
                "avg_actual_lead_time_days": sum((r["actual_arrival_ts"] - r["shipment_ts"]) / DAY for r in got)
                / len(got) if got else None,
            })
    return {"as_of": iso(as_of), "data_until": iso(data_until), "days": days, "regions": region_rows,
            "suppliers": supplier_rows}
