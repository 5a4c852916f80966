"""Contract-shaped Redis snapshots (SPEC §10) for the dashboard tests: built from the reference data with a seeded
RNG and written the way the KPI run writes them (one MULTI/EXEC, TTL on every key)."""

from __future__ import annotations

import datetime as dt
import json
import random

from scbda_assets.domain.reference import DCS, REGIONS, SKUS, SUPPLIERS
from scbda_assets.settings import Settings

WINDOW = 15


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def build(as_of: dt.datetime, seed: int = 7, overrides: dict | None = None) -> dict[str, dict]:
    """The five KPI payloads for one run (SPEC §9/§10 fields). ``overrides`` maps a (dc_id, sku_id, supplier_id or
    region_id) to replacement field values."""
    rng = random.Random(seed)
    region_names = {r.region_id: r.region_name for r in REGIONS}
    inventory, risk = [], []
    for dc in DCS:
        for sku in SKUS:
            on_hand = rng.randint(200, 5000)
            demand = rng.uniform(50, 1500)
            days = on_hand / demand
            horizon = rng.uniform(0.5, 5)
            severity = "critical" if days < 2 else "warning" if days < 7 else "ok"
            common = {"sku_id": sku.sku_id, "dc_id": dc.dc_id, "product_name": sku.product_name,
                      "category": sku.category, "dc_name": dc.dc_name, "region_id": dc.region_id,
                      "on_hand_qty": on_hand}
            inventory.append({**common, "avg_on_hand_qty": on_hand * 1.02, "safety_stock": 400, "reorder_point": 900,
                              "below_safety_stock": on_hand < 400, "days_of_cover": round(days, 3)})
            risk.append({**common, "on_order_qty": rng.choice([0, 0, 2000]), "demand_per_day": round(demand, 2),
                         "demand_stddev_per_day": round(demand * 0.2, 2), "live_demand_per_day": round(demand * 1.1, 2),
                         "history_days": 7, "days_to_stockout": round(days, 3),
                         "projected_stockout_ts": iso(as_of + dt.timedelta(days=days)),
                         "next_receipt_ts": iso(as_of + dt.timedelta(days=horizon)) if rng.random() < 0.6 else None,
                         "horizon_days": round(horizon, 3),
                         "stockout_probability": round(min(1.0, horizon / max(days, 0.01) / 2), 4),
                         "stockout_before_receipt": days < horizon, "severity": severity})
    utilization = []
    for dc, value in zip(DCS, (0.62, 0.87, 0.93, 0.55, 0.71)):
        status = "critical" if value >= 0.90 else "high" if value > 0.85 else "ok"
        inbound = dc.capacity_m3 * 0.04
        utilization.append({"dc_id": dc.dc_id, "dc_name": dc.dc_name, "volume_m3": dc.capacity_m3 * value,
                            "capacity_m3": dc.capacity_m3, "utilization": value, "status": status,
                            "over_threshold": value > 0.85, "inbound_m3": inbound,
                            "projected_utilization": value + 0.04})
    suppliers = []
    for supplier in SUPPLIERS:
        received = 0 if supplier.supplier_id == "SUP-IMPORT-001" else rng.randint(3, 30)
        suppliers.append({"supplier_id": supplier.supplier_id, "supplier_name": supplier.supplier_name,
                          "shipments_created": rng.randint(3, 30),
                          "avg_planned_lead_time_days": supplier.avg_lead_time_days,
                          "stddev_planned_lead_time_days": supplier.lead_time_stddev_days,
                          "shipments_received": received,
                          "avg_actual_lead_time_days": supplier.avg_lead_time_days * 1.1 if received else None,
                          "stddev_actual_lead_time_days": supplier.lead_time_stddev_days * 1.2 if received else None,
                          "on_time_rate": supplier.reliability_score - 0.05 if received else None,
                          "avg_delay_days": 0.3 if received else None, "in_transit": rng.randint(1, 6),
                          "overdue": rng.randint(0, 2), "created_30m": rng.randint(0, 2),
                          "received_30m": rng.randint(0, 2)})
    regional = []
    for region in REGIONS:
        requested = rng.randint(5000, 20000)
        fulfilled = int(requested * rng.uniform(0.9, 0.99))
        orders = requested // 3
        revenue = fulfilled * 700.0
        regional.append({"region_id": region.region_id, "region_name": region_names[region.region_id],
                         "orders": orders, "units_requested": requested, "units_fulfilled": fulfilled,
                         "fill_rate": fulfilled / requested, "revenue": revenue,
                         "lost_revenue": (requested - fulfilled) * 700.0, "avg_order_value": revenue / orders,
                         "orders_in_full": int(orders * 0.9), "order_fill_rate": 0.9})
    for rows in (inventory, risk, utilization, suppliers, regional):
        for row in rows:
            for key, fields in (overrides or {}).items():
                if key in (row.get("dc_id"), row.get("sku_id"), row.get("supplier_id"), row.get("region_id")):
                    row.update(fields)
    header = {"as_of": iso(as_of), "data_until": iso(as_of), "window_minutes": WINDOW}
    return {
        "inventory_level": {**header, "rows": inventory},
        "stockout_risk": {**header, "rows": risk, "alert_count": sum(r["severity"] != "ok" for r in risk)},
        "supplier_performance": {**header, "history_days": 30, "rows": suppliers},
        "dc_utilization": {**header, "rows": utilization},
        "regional_fulfillment": {**header, "rows": regional},
    }


def write(client, settings: Settings, payloads: dict[str, dict], last_update: dt.datetime | None) -> None:
    """One atomic write with the TTL, like the KPI run (``last_update=None`` leaves kpi:last_update unset)."""
    pipe = client.pipeline(transaction=True)
    for name, payload in payloads.items():
        pipe.set(settings.redis_key(f"kpi:{name}"), json.dumps(payload), ex=settings.kpi_ttl_seconds)
    if last_update is not None:
        pipe.set(settings.redis_key("kpi:last_update"), iso(last_update), ex=settings.kpi_ttl_seconds)
    pipe.execute()


def write_history(client, settings: Settings, end: dt.datetime, runs: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    for minute in range(runs, 0, -1):
        client.xadd(settings.redis_key("kpi:history"), {
            "as_of": iso(end - dt.timedelta(minutes=minute)), "total_on_hand": str(rng.randint(90000, 110000)),
            "stockout_alerts": str(rng.randint(5, 15)), "avg_on_time_rate": f"{rng.uniform(0.8, 0.95):.4f}",
            "avg_actual_lead_time_days": f"{rng.uniform(2, 5):.3f}", "avg_utilization": f"{rng.uniform(0.6, 0.8):.4f}",
            "revenue": f"{rng.uniform(1e6, 5e6):.2f}", "fill_rate": "" if minute == runs else f"{rng.uniform(0.9, 0.99):.4f}",
        }, maxlen=1440, approximate=True)


def write_daily(client, settings: Settings, as_of: dt.datetime, days: int = 30, seed: int = 5) -> dict:
    """``history:daily``: per region and per supplier, one row per UTC day for the last ``days`` days."""
    rng = random.Random(seed)
    regions, suppliers = [], []
    for day in range(days, 0, -1):
        date = (as_of - dt.timedelta(days=day)).date().isoformat()
        for region in REGIONS:
            requested = rng.randint(300000, 900000)
            fulfilled = int(requested * rng.uniform(0.93, 0.99))
            orders = requested // 3
            revenue = fulfilled * 700.0
            regions.append({"date": date, "region_id": region.region_id, "region_name": region.region_name,
                            "orders": orders, "units_requested": requested, "units_fulfilled": fulfilled,
                            "fill_rate": fulfilled / requested, "revenue": revenue,
                            "lost_revenue": (requested - fulfilled) * 700.0, "avg_order_value": revenue / orders,
                            "orders_in_full": int(orders * 0.92), "order_fill_rate": 0.92})
        for supplier in SUPPLIERS:
            received = rng.randint(0, 8)
            suppliers.append({"date": date, "supplier_id": supplier.supplier_id, "shipments_received": received,
                              "on_time_rate": rng.uniform(0.7, 1.0) if received else None,
                              "avg_actual_lead_time_days": supplier.avg_lead_time_days * rng.uniform(0.9, 1.3)
                              if received else None})
    document = {"as_of": iso(as_of), "regions": regions, "suppliers": suppliers}
    client.set(settings.redis_key("history:daily"), json.dumps(document))
    return document


def write_archive_status(client, settings: Settings, as_of: dt.datetime) -> dict:
    document = {
        "collections": {
            "orders_fact": {"documents": 4_123_456, "source_bytes": 1_234_567_890, "oldest_event_ts": iso(as_of - dt.timedelta(days=2)),
                            "newest_event_ts": iso(as_of - dt.timedelta(hours=2))},
            "shipments_fact": {"documents": 1_234, "source_bytes": 345_678, "oldest_event_ts": iso(as_of - dt.timedelta(days=2)),
                               "newest_event_ts": iso(as_of - dt.timedelta(hours=3))},
            "inventory_fact": {"documents": 140_000, "source_bytes": 23_456_789,
                               "oldest_event_ts": iso(as_of - dt.timedelta(days=2)),
                               "newest_event_ts": iso(as_of - dt.timedelta(hours=2))},
        },
        "last_runs": [{"started_at": iso(as_of - dt.timedelta(minutes=m)), "duration_s": 12.5, "documents": 250_000,
                       "source_bytes": 80_000_000, "mb_per_s": 6.4} for m in (3, 13)],
        "incomplete_batches": [],
    }
    client.set(settings.redis_key("archive:status"), json.dumps(document))
    return document
