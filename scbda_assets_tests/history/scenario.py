"""A seeded supply chain of raw documents over N days before T, for comparing the KPIs with the plain-Python
reference: several pairs with orders every hour, a pair with no demand, a pair with nothing in transit, purchase
orders received, in transit, overdue, and one received exactly at T."""

from __future__ import annotations

import datetime as dt
import random

from scbda_assets_tests.documents import T, order, shipment, snapshot

PAIRS = [("SKU-STAPLE-001", "DC-KHI"), ("SKU-DAIRY-001", "DC-LHE"), ("SKU-STAPLE-003", "DC-ISB"),
         ("SKU-STAPLE-004", "DC-FSD")]
NO_DEMAND = ("SKU-CLEAN-001", "DC-MUL")  # snapshots, no order ever
NOTHING_IN_TRANSIT = ("SKU-SNACK-001", "DC-KHI")  # orders, no purchase order
SUPPLIERS = ["SUP-LOCAL-001", "SUP-LOCAL-002", "SUP-REGIONAL-001", "SUP-IMPORT-001"]
RECEIVED_AT_T = "SHP-AT-T"


def documents(days: float, seed: int, as_of: dt.datetime = T) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    start = as_of - dt.timedelta(days=days)
    orders, snapshots, shipments = [], [], []
    hour = start
    n = 0
    while hour < as_of:
        for sku, dc in [*PAIRS, NOTHING_IN_TRANSIT]:
            for _ in range(rng.randint(0, 3)):
                ts = hour + dt.timedelta(milliseconds=rng.randint(0, 3_599_999))
                if ts >= as_of:
                    continue
                requested = rng.randint(1, 12)
                fulfilled = requested if rng.random() < 0.7 else rng.randint(0, requested)
                n += 1
                orders.append(order(f"ORD-{n:06d}", sku, dc, ts, requested, fulfilled,
                                    round(rng.uniform(100, 9000), 2), round(rng.uniform(0, 300), 2)))
        hour += dt.timedelta(hours=1)
    for i, (sku, dc) in enumerate([*PAIRS, NO_DEMAND, NOTHING_IN_TRANSIT]):
        for j in range(3):
            ts = as_of - dt.timedelta(minutes=14) + dt.timedelta(minutes=5 * j, milliseconds=rng.randint(0, 59_999))
            snapshots.append(snapshot(f"INV-{i}-{j}", sku, dc, rng.randint(0, 3000), ts, safety_stock=150,
                                      reorder_point=400, on_order_qty=rng.randint(0, 500)))
    for i in range(int(6 * days) + 4):
        sku, dc = rng.choice(PAIRS)
        ts = start + dt.timedelta(milliseconds=rng.randint(0, int(days * 86_400_000) - 1))
        planned = round(rng.uniform(1.0, 8.0), 3)
        expected = ts + dt.timedelta(days=planned)
        actual = expected + dt.timedelta(days=rng.expovariate(2.0)) if rng.random() < 0.5 else \
            expected - dt.timedelta(hours=rng.uniform(0, 20))
        actual = actual if actual < as_of else None
        shipments.append(shipment(f"SHP-{i:04d}", rng.choice(SUPPLIERS), ts, planned, expected, actual,
                                  sku_id=sku, dc_id=dc, quantity=rng.randint(50, 900)))
    # Received exactly at T: still in transit at T (not received before T), counted as received from T on.
    ts = as_of - dt.timedelta(days=2, hours=3)
    shipments.append(shipment(RECEIVED_AT_T, "SUP-LOCAL-002", ts, 2.0, ts + dt.timedelta(days=2), as_of,
                              sku_id=PAIRS[0][0], dc_id=PAIRS[0][1], quantity=333))
    # Overdue: expected a day ago, still in transit.
    ts = as_of - dt.timedelta(days=3)
    shipments.append(shipment("SHP-OVERDUE", "SUP-IMPORT-001", ts, 2.0, ts + dt.timedelta(days=2), None,
                              sku_id=PAIRS[1][0], dc_id=PAIRS[1][1], quantity=120))
    facts = {"orders_fact": orders, "inventory_fact": snapshots, "shipments_fact": shipments}
    for docs in facts.values():  # BSON keeps milliseconds: the reference sees the times as stored
        for doc in docs:
            for key, value in doc.items():
                if isinstance(value, dt.datetime):
                    doc[key] = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return facts


def insert(db, facts: dict[str, list[dict]]) -> None:
    for collection, docs in facts.items():
        if docs:
            db[collection].insert_many([dict(doc) for doc in docs])
