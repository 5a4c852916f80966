"""KPI test data: the dimensions in the test's database and builders for hand-made fact documents."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.domain.reference import DIMENSIONS, dimension_documents

# As-of time of the hand-made scenarios (a minute boundary, like a schedule tick).
T = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def minutes_before(minutes: float) -> dt.datetime:
    return T - dt.timedelta(minutes=minutes)


def snapshot(snapshot_id, sku_id, dc_id, on_hand, ts, safety_stock=100, reorder_point=200, **extra) -> dict:
    return {"snapshot_id": snapshot_id, "sku_id": sku_id, "dc_id": dc_id, "on_hand_qty": on_hand, "on_order_qty": 0,
            "safety_stock": safety_stock, "reorder_point": reorder_point, "inventory_ts": ts, "ingested_at": ts,
            **extra}


def order(order_id, sku_id, dc_id, ts, requested=1, fulfilled=None, value=100.0, lost_revenue=0.0, **extra) -> dict:
    fulfilled = requested if fulfilled is None else fulfilled
    whole = isinstance(requested, int) and isinstance(fulfilled, int)
    return {"order_id": order_id, "sku_id": sku_id, "dc_id": dc_id, "region_id": "PK-SINDH",
            "requested_qty": requested, "fulfilled_qty": fulfilled, "lost_qty": requested - fulfilled if whole else None,
            "order_value": value, "lost_revenue": lost_revenue, "priority": "NORMAL", "order_ts": ts,
            "ingested_at": ts, **extra}


def shipment(shipment_id, supplier_id, ts, planned=2.0, expected=None, actual=None, **extra) -> dict:
    expected = expected if expected is not None else ts + dt.timedelta(days=planned)
    return {"shipment_id": shipment_id, "sku_id": "SKU-STAPLE-001", "supplier_id": supplier_id, "dc_id": "DC-KHI",
            "quantity": 100, "planned_lead_time_days": planned, "shipment_ts": ts, "expected_arrival_ts": expected,
            "actual_arrival_ts": actual, "status": "received" if actual else "in_transit", "ingested_at": ts,
            **extra}


@pytest.fixture
def kpi_db(mongo_db):
    """The test's database with the four dimension collections (as the reference assets store them)."""
    for name in DIMENSIONS:
        mongo_db[name].insert_many(dimension_documents(name))
    yield mongo_db
    mongo_db.client.drop_database(f"{mongo_db.name}_history")  # the history layer a KPI run keeps next to it
