"""The columnar 7-day demand (what the lane feeds the reference at 100x) equals the reference's own, from documents."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa

from scbda_assets.chaos.reference import order_demand, order_demand_columns

AS_OF = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


def test_columnar_demand_equals_the_document_demand_on_seeded_orders_across_days_and_edges():
    rng = random.Random(31)
    orders = []
    for i in range(3000):
        ts = AS_OF - dt.timedelta(milliseconds=rng.randint(-60_000, 9 * 86_400_000))
        if i % 100 == 0:
            ts = AS_OF - dt.timedelta(days=7)  # the window's closed edge
        orders.append({"order_id": f"ORD-{i}", "sku_id": f"SKU-{rng.randint(0, 4)}", "dc_id": f"DC-{rng.randint(0, 2)}",
                       "region_id": "R", "requested_qty": rng.randint(1, 12), "fulfilled_qty": 1, "lost_qty": 0,
                       "order_value": 1.0, "lost_revenue": 0.0, "priority": "LOW", "order_ts": ts, "ingested_at": ts})
    table = pa.Table.from_pylist([{k: o[k] for k in ("sku_id", "dc_id", "order_ts", "requested_qty")} for o in orders],
                                 schema=pa.schema({"sku_id": pa.string(), "dc_id": pa.string(),
                                                   "order_ts": pa.timestamp("ms", tz="UTC"),
                                                   "requested_qty": pa.int64()}))
    expected, actual = order_demand(orders, AS_OF), order_demand_columns(table, AS_OF)
    assert len(expected.days) == 7 and len(expected.week) == 15 and sum(expected.per_day.values()) > 10_000
    assert actual.earliest == expected.earliest and actual.days == expected.days
    assert actual.week == dict(expected.week) and actual.per_day == dict(expected.per_day)
    # The hourly units the reference fits its forecast on (28 days before as-of's hour), the same both ways.
    assert actual.hourly == expected.hourly and sum(expected.hourly.values()) > 10_000
