"""Hand-made SPEC §6 fact documents for archive tests and the archive benchmark (seeded, deterministic ids)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from scbda_assets.domain.reference import dimension_documents

DCS = {doc["dc_id"]: doc["region_id"] for doc in dimension_documents("dcs_dim")}
SKUS = [doc["sku_id"] for doc in dimension_documents("skus_dim")]
SUPPLIERS = [doc["supplier_id"] for doc in dimension_documents("suppliers_dim")]


def _times(rng, start: dt.datetime, end: dt.datetime, n: int) -> list[dt.datetime]:
    span = (end - start).total_seconds()
    offsets = np.sort(rng.uniform(0, span, n))
    # BSON dates have millisecond resolution: make the originals comparable with what comes back.
    return [start + dt.timedelta(milliseconds=int(s * 1000)) for s in offsets]


def orders(start: dt.datetime, end: dt.datetime, n: int, *, seed: int = 1, prefix: str = "O") -> list[dict]:
    rng = np.random.default_rng(seed)
    dcs = list(DCS)
    docs = []
    for i, ts in enumerate(_times(rng, start, end, n)):
        dc = dcs[int(rng.integers(len(dcs)))]
        requested = int(rng.integers(1, 20))
        fulfilled = int(rng.integers(0, requested + 1))
        docs.append({
            "order_id": f"{prefix}-{seed}-{i:08d}", "sku_id": SKUS[int(rng.integers(len(SKUS)))], "dc_id": dc,
            "region_id": DCS[dc], "requested_qty": requested, "fulfilled_qty": fulfilled,
            "lost_qty": requested - fulfilled, "order_value": round(float(fulfilled * rng.uniform(150, 1500)), 2),
            "lost_revenue": round(float((requested - fulfilled) * 500.0), 2),
            "priority": ["HIGH", "NORMAL", "LOW"][int(rng.integers(3))], "order_ts": ts,
            "ingested_at": ts + dt.timedelta(seconds=1),
        })
    return docs


def shipments(start: dt.datetime, end: dt.datetime, n: int, *, seed: int = 2, in_transit_every: int = 4,
              received_at: dt.datetime | None = None) -> list[dict]:
    """Every ``in_transit_every``-th shipment is still in transit; the others were received (at ``received_at``,
    default one day after shipping)."""
    rng = np.random.default_rng(seed)
    docs = []
    for i, ts in enumerate(_times(rng, start, end, n)):
        lead = float(rng.uniform(1, 7))
        in_transit = in_transit_every and i % in_transit_every == 0
        arrival = received_at or ts + dt.timedelta(days=1)
        docs.append({
            "shipment_id": f"S-{seed}-{i:08d}", "sku_id": SKUS[i % len(SKUS)], "supplier_id": SUPPLIERS[i % 4],
            "dc_id": list(DCS)[i % len(DCS)], "quantity": int(rng.integers(100, 1000)),
            "planned_lead_time_days": lead, "shipment_ts": ts, "expected_arrival_ts": ts + dt.timedelta(days=lead),
            "actual_arrival_ts": None if in_transit else arrival,
            "status": "in_transit" if in_transit else "received", "ingested_at": ts,
        })
    return docs


def inventory(start: dt.datetime, end: dt.datetime, n: int, *, seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    docs = []
    for i, ts in enumerate(_times(rng, start, end, n)):
        docs.append({
            "snapshot_id": f"I-{seed}-{i:08d}", "sku_id": SKUS[i % len(SKUS)], "dc_id": list(DCS)[i % len(DCS)],
            "on_hand_qty": int(rng.integers(0, 5000)), "on_order_qty": int(rng.integers(0, 1000)),
            "safety_stock": 200, "reorder_point": 400, "inventory_ts": ts, "ingested_at": ts,
        })
    return docs


def malformed_orders(start: dt.datetime) -> list[dict]:
    """Documents that reached MongoDB from outside: wrong types, missing fields, extra fields, no event time."""
    return [
        {"order_id": "BAD-1", "sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "region_id": "PK-SINDH",
         "requested_qty": "seven", "fulfilled_qty": 3, "lost_qty": 0, "order_value": 660.0, "lost_revenue": 0.0,
         "priority": "HIGH", "order_ts": start + dt.timedelta(minutes=5), "ingested_at": start},
        {"order_id": "BAD-2", "order_ts": start + dt.timedelta(minutes=6)},  # missing most fields
        {"order_id": 12345, "sku_id": "SKU-BEV-001", "dc_id": "DC-LHE", "region_id": "PK-PUNJAB-NORTH",
         "requested_qty": 2, "fulfilled_qty": 2, "lost_qty": 0, "order_value": 300.0, "lost_revenue": 0.0,
         "priority": "LOW", "order_ts": start + dt.timedelta(minutes=7), "ingested_at": start,
         "coupon": {"code": "X1", "pct": 5}},  # wrong id type and an extra nested field
        {"order_id": "BAD-4", "order_ts": "2026-01-01 not a date", "ingested_at": start + dt.timedelta(minutes=8)},
    ]


def insert_all(db, docs_by_collection: dict[str, list[dict]]) -> None:
    for name, docs in docs_by_collection.items():
        if docs:
            db[name].insert_many(docs, ordered=False)  # adds each _id to the dicts
