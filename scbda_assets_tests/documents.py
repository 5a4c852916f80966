"""The suite's one document factory: hand-made fact documents with every field of the hot store's collections.

One builder per collection (``order``, ``shipment``, ``snapshot``) holds the field list; everything else starts from
it: the named valid documents of the quality tests (``valid_*``: one of each kind, and ways to break it with field
overrides or ``DROP``) and the seeded bulk documents of the archive and history tests (``orders``, ``shipments``,
``inventory``). Every time is UTC; bulk ids are deterministic per seed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from scbda_assets.domain.reference import dimension_documents

# As-of time of the hand-made KPI scenarios (a minute boundary, like a schedule tick).
T = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
# Event time of the quality tests' valid documents.
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)

DCS = {doc["dc_id"]: doc["region_id"] for doc in dimension_documents("dcs_dim")}
SKUS = [doc["sku_id"] for doc in dimension_documents("skus_dim")]
SUPPLIERS = [doc["supplier_id"] for doc in dimension_documents("suppliers_dim")]

DROP = object()  # pass field=DROP to leave the field out


def minutes_before(minutes: float) -> dt.datetime:
    return T - dt.timedelta(minutes=minutes)


def _without_dropped(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if v is not DROP}


# --- one builder per collection -------------------------------------------------------------------------------------

def snapshot(snapshot_id, sku_id, dc_id, on_hand, ts, safety_stock=100, reorder_point=200, **extra) -> dict:
    return _without_dropped({
        "snapshot_id": snapshot_id, "sku_id": sku_id, "dc_id": dc_id, "on_hand_qty": on_hand, "on_order_qty": 0,
        "safety_stock": safety_stock, "reorder_point": reorder_point, "inventory_ts": ts, "ingested_at": ts, **extra,
    })


def order(order_id, sku_id, dc_id, ts, requested=1, fulfilled=None, value=100.0, lost_revenue=0.0, **extra) -> dict:
    fulfilled = requested if fulfilled is None else fulfilled
    whole = isinstance(requested, int) and isinstance(fulfilled, int)
    return _without_dropped({
        "order_id": order_id, "sku_id": sku_id, "dc_id": dc_id, "region_id": "PK-SINDH",
        "requested_qty": requested, "fulfilled_qty": fulfilled, "lost_qty": requested - fulfilled if whole else None,
        "order_value": value, "lost_revenue": lost_revenue, "priority": "NORMAL", "order_ts": ts, "ingested_at": ts,
        **extra,
    })


def shipment(shipment_id, supplier_id, ts, planned=2.0, expected=None, actual=None, **extra) -> dict:
    expected = expected if expected is not None else ts + dt.timedelta(days=planned)
    return _without_dropped({
        "shipment_id": shipment_id, "sku_id": "SKU-STAPLE-001", "supplier_id": supplier_id, "dc_id": "DC-KHI",
        "quantity": 100, "planned_lead_time_days": planned, "shipment_ts": ts, "expected_arrival_ts": expected,
        "actual_arrival_ts": actual, "status": "received" if actual else "in_transit", "ingested_at": ts, **extra,
    })


# --- one valid document of each kind (quality tests): break it with field=value or field=DROP ----------------------

def valid_order(i: int = 0, **changes) -> dict:
    base = order(f"ORD-T-{i}", "SKU-DAIRY-001", "DC-KHI", T0, requested=5, fulfilled=4, value=1100.0,
                 lost_revenue=275.0)
    return _without_dropped({**base, **changes})


def valid_shipment(i: int = 0, **changes) -> dict:
    base = shipment(f"SHP-T-{i}", "SUP-LOCAL-001", T0, sku_id="SKU-DAIRY-001", quantity=500)
    return _without_dropped({**base, **changes})


def valid_snapshot(i: int = 0, **changes) -> dict:
    base = snapshot(f"SNP-T-{i}", "SKU-DAIRY-001", "DC-KHI", 900, T0, safety_stock=300, reorder_point=600)
    return _without_dropped({**base, **changes})


# --- seeded bulk documents (archive and history tests, the archive benchmark) -------------------------------------

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
        sku = SKUS[int(rng.integers(len(SKUS)))]
        value = round(float(fulfilled * rng.uniform(150, 1500)), 2)
        priority = ["HIGH", "NORMAL", "LOW"][int(rng.integers(3))]
        docs.append(order(f"{prefix}-{seed}-{i:08d}", sku, dc, ts, requested=requested, fulfilled=fulfilled,
                          value=value, lost_revenue=round(float((requested - fulfilled) * 500.0), 2),
                          region_id=DCS[dc], priority=priority, ingested_at=ts + dt.timedelta(seconds=1)))
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
        docs.append(shipment(f"S-{seed}-{i:08d}", SUPPLIERS[i % 4], ts, planned=lead,
                             expected=ts + dt.timedelta(days=lead), actual=None if in_transit else arrival,
                             sku_id=SKUS[i % len(SKUS)], dc_id=list(DCS)[i % len(DCS)],
                             quantity=int(rng.integers(100, 1000))))
    return docs


def inventory(start: dt.datetime, end: dt.datetime, n: int, *, seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    docs = []
    for i, ts in enumerate(_times(rng, start, end, n)):
        on_hand = int(rng.integers(0, 5000))
        docs.append(snapshot(f"I-{seed}-{i:08d}", SKUS[i % len(SKUS)], list(DCS)[i % len(DCS)], on_hand, ts,
                             safety_stock=200, reorder_point=400, on_order_qty=int(rng.integers(0, 1000))))
    return docs


def malformed_orders(start: dt.datetime) -> list[dict]:
    """Documents that reached MongoDB from outside: wrong types, missing fields, extra fields, no event time."""
    return [
        order("BAD-1", "SKU-DAIRY-001", "DC-KHI", start + dt.timedelta(minutes=5), requested="seven", fulfilled=3,
              value=660.0, lost_qty=0, priority="HIGH", ingested_at=start),
        {"order_id": "BAD-2", "order_ts": start + dt.timedelta(minutes=6)},  # missing most fields
        order(12345, "SKU-BEV-001", "DC-LHE", start + dt.timedelta(minutes=7), requested=2, value=300.0,
              region_id="PK-PUNJAB-NORTH", priority="LOW", ingested_at=start,
              coupon={"code": "X1", "pct": 5}),  # wrong id type and an extra nested field
        {"order_id": "BAD-4", "order_ts": "2026-01-01 not a date", "ingested_at": start + dt.timedelta(minutes=8)},
    ]


def insert_all(db, docs_by_collection: dict[str, list[dict]]) -> None:
    for name, docs in docs_by_collection.items():
        if docs:
            db[name].insert_many(docs, ordered=False)  # adds each _id to the dicts
