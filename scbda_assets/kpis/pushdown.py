"""MongoDB aggregation pipelines that pre-aggregate the KPI inputs inside the database (pure: no I/O, no Dagster).

Each pipeline reads one half-open event-time window [start, end) through the collection's event-time index and
returns a handful of rows per (sku_id, dc_id) pair or per supplier, so what leaves MongoDB — and what Spark joins —
does not grow with the event rate. Only sufficient statistics leave the database (counts, sums, the latest snapshot);
the formulas themselves are Spark SQL (``sql.py``).

Malformed documents (missing fields, wrong types, nulls) are skipped by ``$match`` type filters: a range filter on a
date only matches BSON dates, and ``$type`` rejects nulls, strings in numeric fields and missing fields alike.
Unknown ids pass here and are dropped by the joins with the dimensions.

Tie-break of the latest snapshot: the greatest ``inventory_ts``; among snapshots at that same time, the greatest
``snapshot_id`` (string order).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa

from scbda_assets.contract import INVENTORY, ORDERS, SHIPMENTS

_STRING = "string"


@dataclasses.dataclass(frozen=True)
class Pushdown:
    """One aggregation: the collection it reads, the pipeline, and the Arrow schema of its rows."""

    collection: str
    pipeline: list[dict]
    schema: dict[str, pa.DataType]


def _window(field: str, start: dt.datetime, end: dt.datetime) -> dict:
    return {field: {"$gte": start, "$lt": end}}


def latest_inventory(start: dt.datetime, end: dt.datetime) -> Pushdown:
    """Per pair with >= 1 snapshot in [start, end): the latest snapshot, and count and sum of on-hand for the mean."""
    match = {
        **_window("inventory_ts", start, end),
        **INVENTORY.type_filter("snapshot_id", "sku_id", "dc_id", "on_hand_qty", "safety_stock", "reorder_point"),
    }
    latest = {"on_hand_qty": "$on_hand_qty", "on_order_qty": "$on_order_qty", "safety_stock": "$safety_stock",
              "reorder_point": "$reorder_point"}
    pipeline = [
        {"$match": match},
        {
            "$group": {
                "_id": {"sku_id": "$sku_id", "dc_id": "$dc_id"},
                "latest": {"$top": {"sortBy": {"inventory_ts": -1, "snapshot_id": -1}, "output": latest}},
                "snapshots": {"$sum": 1},
                "sum_on_hand": {"$sum": {"$toLong": "$on_hand_qty"}},
            }
        },
        {
            "$project": {
                "_id": 0,
                "sku_id": "$_id.sku_id",
                "dc_id": "$_id.dc_id",
                "on_hand_qty": {"$toLong": "$latest.on_hand_qty"},
                # on_order_qty is read as it is (a malformed value becomes null rather than dropping the pair)
                "on_order_qty": {"$convert": {"input": "$latest.on_order_qty", "to": "long", "onError": None,
                                              "onNull": None}},
                "safety_stock": {"$toDouble": "$latest.safety_stock"},
                "reorder_point": {"$toDouble": "$latest.reorder_point"},
                "snapshots": {"$toLong": "$snapshots"},
                "sum_on_hand": "$sum_on_hand",
            }
        },
    ]
    schema = {
        "sku_id": pa.string(),
        "dc_id": pa.string(),
        "on_hand_qty": pa.int64(),
        "on_order_qty": pa.int64(),
        "safety_stock": pa.float64(),
        "reorder_point": pa.float64(),
        "snapshots": pa.int64(),
        "sum_on_hand": pa.int64(),
    }
    return Pushdown("inventory_fact", pipeline, schema)


# An order is counted when it is well-formed by the archive's own ``$jsonSchema`` (exactly its fields, each of its
# BSON type): the live window, the minute rollup and the hourly history then count the same orders, before and after
# archival (a malformed order is archived raw and skipped there too). ``ingested_at`` is a date by that schema, which
# the rollup relies on to find new orders.
ORDER_TYPES = {"$jsonSchema": ORDERS.json_schema()}
ORDER_SUMS = ("orders", "units_requested", "units_fulfilled", "revenue", "lost_revenue", "orders_in_full")
ORDER_SCHEMA = {
    "sku_id": pa.string(),
    "dc_id": pa.string(),
    "orders": pa.int64(),
    "units_requested": pa.int64(),
    "units_fulfilled": pa.int64(),
    "revenue": pa.float64(),
    "lost_revenue": pa.float64(),
    "orders_in_full": pa.int64(),
}


def order_sums_of_documents() -> dict:
    """$group accumulators over raw order documents."""
    return {
        "orders": {"$sum": 1},
        "units_requested": {"$sum": {"$toLong": "$requested_qty"}},
        "units_fulfilled": {"$sum": {"$toLong": "$fulfilled_qty"}},
        "revenue": {"$sum": {"$toDouble": "$order_value"}},
        "lost_revenue": {"$sum": {"$toDouble": "$lost_revenue"}},
        "orders_in_full": {"$sum": {"$cond": [{"$eq": ["$fulfilled_qty", "$requested_qty"]}, 1, 0]}},
    }


def order_sums_of_partials() -> dict:
    """$group accumulators over rows that already hold the five sums (rollup rows)."""
    return {name: {"$sum": f"${name}"} for name in ORDER_SUMS}


def per_pair_orders(group_sums: dict) -> list[dict]:
    """The $group by pair and the $project to ``ORDER_SCHEMA`` shared by the direct and the rolled-up reads."""
    return [
        {"$group": {"_id": {"sku_id": "$sku_id", "dc_id": "$dc_id"}, **group_sums}},
        {
            "$project": {
                "_id": 0,
                "sku_id": "$_id.sku_id",
                "dc_id": "$_id.dc_id",
                "orders": {"$toLong": "$orders"},
                "units_requested": {"$toLong": "$units_requested"},
                "units_fulfilled": {"$toLong": "$units_fulfilled"},
                "revenue": {"$toDouble": "$revenue"},
                "lost_revenue": {"$toDouble": "$lost_revenue"},
                "orders_in_full": {"$toLong": "$orders_in_full"},
            }
        },
    ]


def order_totals(start: dt.datetime, end: dt.datetime) -> Pushdown:
    """Per pair: orders, requested and fulfilled units, revenue and lost revenue of orders in [start, end), read
    from the order documents themselves (cost grows with the orders in the window; see ``rollup.py``)."""
    match = {**_window("order_ts", start, end), **ORDER_TYPES}
    pipeline = [{"$match": match}, *per_pair_orders(order_sums_of_documents())]
    return Pushdown("orders_fact", pipeline, dict(ORDER_SCHEMA))


def shipments_created(start: dt.datetime, end: dt.datetime) -> Pushdown:
    """Per supplier: count, sum and sum of squares of the planned lead time of shipments created in [start, end)."""
    match = {**_window("shipment_ts", start, end), **SHIPMENTS.type_filter("supplier_id", "planned_lead_time_days")}
    planned = {"$toDouble": "$planned_lead_time_days"}
    pipeline = [
        {"$match": match},
        {
            "$group": {
                "_id": "$supplier_id",
                "created": {"$sum": 1},
                "sum_planned": {"$sum": planned},
                "sum_planned_sq": {"$sum": {"$multiply": [planned, planned]}},
            }
        },
        {"$project": {"_id": 0, "supplier_id": "$_id", "created": {"$toLong": "$created"}, "sum_planned": 1,
                      "sum_planned_sq": 1}},
    ]
    schema = {
        "supplier_id": pa.string(),
        "created": pa.int64(),
        "sum_planned": pa.float64(),
        "sum_planned_sq": pa.float64(),
    }
    return Pushdown("shipments_fact", pipeline, schema)


def shipments_received(start: dt.datetime, end: dt.datetime) -> Pushdown:
    """Per supplier: shipments received in [start, end), their total actual lead time (ms) and how many were on time."""
    match = {
        **_window("actual_arrival_ts", start, end),
        **SHIPMENTS.type_filter("supplier_id", "shipment_ts", "expected_arrival_ts"),
    }
    pipeline = [
        {"$match": match},
        {
            "$group": {
                "_id": "$supplier_id",
                "received": {"$sum": 1},
                "sum_lead_ms": {"$sum": {"$toLong": {"$subtract": ["$actual_arrival_ts", "$shipment_ts"]}}},
                "on_time": {"$sum": {"$cond": [{"$lte": ["$actual_arrival_ts", "$expected_arrival_ts"]}, 1, 0]}},
            }
        },
        {"$project": {"_id": 0, "supplier_id": "$_id", "received": {"$toLong": "$received"},
                      "sum_lead_ms": {"$toLong": "$sum_lead_ms"}, "on_time": {"$toLong": "$on_time"}}},
    ]
    schema = {"supplier_id": pa.string(), "received": pa.int64(), "sum_lead_ms": pa.int64(), "on_time": pa.int64()}
    return Pushdown("shipments_fact", pipeline, schema)


# Dimension columns the KPIs use: collection -> (business key, {field: arrow type}).
DIMENSION_COLUMNS: dict[str, tuple[str, dict[str, pa.DataType]]] = {
    "regions_dim": ("region_id", {"region_id": pa.string(), "region_name": pa.string()}),
    "dcs_dim": (
        "dc_id",
        {
            "dc_id": pa.string(),
            "dc_name": pa.string(),
            "region_id": pa.string(),
            "city": pa.string(),
            "latitude": pa.float64(),
            "longitude": pa.float64(),
            "capacity_m3": pa.float64(),
        },
    ),
    "skus_dim": (
        "sku_id",
        {"sku_id": pa.string(), "product_name": pa.string(), "category": pa.string(), "storage_m3": pa.float64(),
         "lead_time_days": pa.float64(), "unit_cost": pa.float64()},
    ),
    "suppliers_dim": (
        "supplier_id",
        {
            "supplier_id": pa.string(),
            "supplier_name": pa.string(),
            "supplier_type": pa.string(),
            "reliability_score": pa.float64(),
        },
    ),
}


def dimension(collection: str) -> Pushdown:
    """All rows of a dimension with a string business key, projected to the columns the KPIs use."""
    key, columns = DIMENSION_COLUMNS[collection]
    numeric = {name for name, kind in columns.items() if pa.types.is_floating(kind)}
    # $convert with onError: a malformed number in a dimension becomes null instead of failing the whole run.
    as_double = {name: {"$convert": {"input": f"${name}", "to": "double", "onError": None}} for name in numeric}
    project = {"_id": 0, **{name: as_double.get(name, 1) for name in columns}}
    pipeline = [{"$match": {key: {"$type": _STRING}}}, {"$project": project}, {"$sort": {key: 1}}]
    return Pushdown(collection, pipeline, dict(columns))
