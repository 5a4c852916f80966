"""Helpers for generator tests: a fixed simulated start (a weekday outside Ramadan) and Mongo balance checks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

T0 = dt.datetime(2026, 5, 5, 10, 0, tzinfo=dt.UTC)  # Tuesday, 15:00 in Karachi


@pytest.fixture
def t0() -> dt.datetime:
    return T0


def balance_violations(db, until: dt.datetime | None = None) -> list[str]:
    """Check on_hand(t1) = on_hand(t0) − Σ fulfilled[t0, t1) + Σ received[t0, t1) for consecutive snapshots
    (those at or before ``until``)."""
    snaps = defaultdict(list)
    query = {} if until is None else {"inventory_ts": {"$lte": until}}
    for s in db.inventory_fact.find(query, {"_id": 0, "sku_id": 1, "dc_id": 1, "inventory_ts": 1, "on_hand_qty": 1}):
        snaps[(s["sku_id"], s["dc_id"])].append((s["inventory_ts"], s["on_hand_qty"]))
    fulfilled = defaultdict(list)
    for o in db.orders_fact.find({}, {"_id": 0, "sku_id": 1, "dc_id": 1, "order_ts": 1, "fulfilled_qty": 1}):
        fulfilled[(o["sku_id"], o["dc_id"])].append((o["order_ts"], o["fulfilled_qty"]))
    received = defaultdict(list)
    for s in db.shipments_fact.find({"status": "received"}, {"_id": 0}):
        received[(s["sku_id"], s["dc_id"])].append((s["actual_arrival_ts"], s["quantity"]))
    problems = []
    for pair, series in snaps.items():
        series.sort()
        for (ta, qa), (tb, qb) in zip(series, series[1:]):
            out = sum(q for t, q in fulfilled[pair] if ta <= t < tb)
            into = sum(q for t, q in received[pair] if ta <= t < tb)
            if qb != qa - out + into:
                problems.append(f"{pair} {ta}->{tb}: {qa} - {out} + {into} != {qb}")
    return problems
