"""Purpose-built documents for the quality tests: one valid of each kind, and ways to break them."""

from __future__ import annotations

import datetime as dt

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def order(i: int = 0, **changes) -> dict:
    doc = {
        "order_id": f"ORD-T-{i}", "sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "region_id": "PK-SINDH",
        "requested_qty": 5, "fulfilled_qty": 4, "lost_qty": 1, "order_value": 1100.0, "lost_revenue": 275.0,
        "priority": "NORMAL", "order_ts": T0, "ingested_at": T0,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


def shipment(i: int = 0, **changes) -> dict:
    doc = {
        "shipment_id": f"SHP-T-{i}", "sku_id": "SKU-DAIRY-001", "supplier_id": "SUP-LOCAL-001", "dc_id": "DC-KHI",
        "quantity": 500, "planned_lead_time_days": 2.0, "shipment_ts": T0,
        "expected_arrival_ts": T0 + dt.timedelta(days=2), "actual_arrival_ts": None, "status": "in_transit",
        "ingested_at": T0,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


def snapshot(i: int = 0, **changes) -> dict:
    doc = {
        "snapshot_id": f"SNP-T-{i}", "sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "on_hand_qty": 900,
        "on_order_qty": 0, "safety_stock": 300, "reorder_point": 600, "inventory_ts": T0, "ingested_at": T0,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()
DROP = _DROP  # pass field=DROP to leave the field out
