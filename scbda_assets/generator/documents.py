"""MongoDB documents (SPEC §6, exact field names) from one interval's simulated events.

Documents are plain dicts written with pymongo's unordered insert_many (pymongoarrow's writer builds the same
dicts row by row and inserts ordered, so it is not faster here). Business ids are deterministic per interval (``<prefix>-<YYYYMMDDHHMM of the interval start>-…``), so writing
an interval again yields the same ids and the unique indexes turn the repeat into a no-op.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from scbda_assets.domain import demand, supply
from scbda_assets.domain.reference import DCS
from scbda_assets.domain.simulation import PAIR_DC_ID, PAIR_SKU_ID, Events, interval_stamp

DC_REGION_ID = np.array([DCS[d].region_id for d in demand.PAIR_DC])


def _times(values: np.ndarray) -> list[dt.datetime]:
    """datetime64[ms] → naive datetimes in UTC, which pymongo stores as UTC BSON dates (cheaper than tz-aware)."""
    return values.astype("datetime64[ms]").tolist()


def order_documents(ev: Events, ingested_at: dt.datetime) -> tuple[list[dict], list[dt.datetime]]:
    """orders_fact documents and, per document, when it reaches the store (its release time)."""
    stamp = interval_stamp(ev.start)
    pair = ev.order_pair
    price = ev.unit_price
    value = np.round(price * ev.fulfilled, 2).tolist()
    lost_revenue = np.round(price * ev.lost, 2).tolist()
    docs = [
        {
            "order_id": f"ORD-{stamp}-{i:06d}",
            "sku_id": sku,
            "dc_id": dc,
            "region_id": region,
            "requested_qty": req,
            "fulfilled_qty": ful,
            "lost_qty": req - ful,
            "order_value": val,
            "lost_revenue": lost,
            "priority": prio,
            "order_ts": ts,
            "ingested_at": ingested_at,
        }
        for i, (sku, dc, region, req, ful, val, lost, prio, ts) in enumerate(
            zip(
                PAIR_SKU_ID[pair].tolist(),
                PAIR_DC_ID[pair].tolist(),
                DC_REGION_ID[pair].tolist(),
                ev.requested.tolist(),
                ev.fulfilled.tolist(),
                value,
                lost_revenue,
                ev.priority.tolist(),
                _times(ev.order_ts),
            )
        )
    ]
    return docs, _times(ev.order_release)


def shipment_documents(ev: Events, ingested_at: dt.datetime) -> tuple[list[dict], list[dt.datetime]]:
    """shipments_fact documents of the purchase orders created in the interval (in transit)."""
    docs = [
        {
            "shipment_id": sid,
            "sku_id": sku,
            "supplier_id": supplier,
            "dc_id": dc,
            "quantity": qty,
            "planned_lead_time_days": planned,
            "shipment_ts": ts,
            "expected_arrival_ts": expected,
            "actual_arrival_ts": None,
            "status": "in_transit",
            "ingested_at": ingested_at,
        }
        for sid, sku, dc, supplier, qty, planned, ts, expected in zip(
            ev.ship_id.tolist(),
            PAIR_SKU_ID[ev.ship_pair].tolist(),
            PAIR_DC_ID[ev.ship_pair].tolist(),
            supply.SUPPLIER_IDS[ev.ship_supplier].tolist(),
            ev.ship_qty.tolist(),
            ev.ship_planned_days.tolist(),
            _times(ev.ship_ts),
            _times(ev.ship_expected),
        )
    ]
    return docs, _times(ev.ship_release)


def receipts(ev: Events) -> list[tuple[str, dt.datetime]]:
    """(shipment_id, actual_arrival_ts) of the purchase orders received in the interval."""
    return list(zip(ev.recv_id.tolist(), _times(ev.recv_ts)))


def snapshot_documents(ev: Events, ingested_at: dt.datetime) -> list[dict]:
    """inventory_fact: the opening snapshot of every pair at the interval start."""
    stamp = interval_stamp(ev.start)
    ts = _times(np.array([ev.start]))[0]
    return [
        {
            "snapshot_id": f"INV-{stamp}-{sku}-{dc}",
            "sku_id": sku,
            "dc_id": dc,
            "on_hand_qty": on_hand,
            "on_order_qty": on_order,
            "safety_stock": safety,
            "reorder_point": reorder,
            "inventory_ts": ts,
            "ingested_at": ingested_at,
        }
        for sku, dc, on_hand, on_order, safety, reorder in zip(
            PAIR_SKU_ID.tolist(),
            PAIR_DC_ID.tolist(),
            ev.snap_on_hand.tolist(),
            ev.snap_on_order.tolist(),
            ev.snap_safety_stock.tolist(),
            ev.snap_reorder_point.tolist(),
        )
    ]
