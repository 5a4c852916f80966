"""Daily history per region over hot (MongoDB) + cold (Parquet archive) orders, de-duplicated by order_id.

The cold side is read with partition pruning (only ``event_date`` folders that can hold the window); the hot side
with pymongoarrow. An order counted in both stores (a batch between verify and delete) counts once. Days are
business days in Asia/Karachi; an order belongs to the region of its DC. Malformed documents (``raw_json`` set in
the archive, not matching the schema in MongoDB) are skipped, as the KPIs skip them.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pyarrow as pa

from scbda_assets.archive.schema import ORDERS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.domain.reference import RULES, dimension_documents

DAYS = 7
_COLUMNS = ["order_id", "dc_id", "requested_qty", "fulfilled_qty", "order_value", "order_ts"]


def window(as_of: dt.datetime, days: int = DAYS) -> tuple[list[dt.date], dt.datetime, dt.datetime]:
    """The ``days`` business days ending with as_of's day (the last one partial); UTC bounds [start, as_of)."""
    zone = ZoneInfo(RULES.business_timezone)
    today = as_of.astimezone(zone).date()
    dates = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    start = dt.datetime.combine(dates[0], dt.time(), zone).astimezone(dt.UTC)
    return dates, start, as_of.astimezone(dt.UTC)


def hot_orders(db, start: dt.datetime, end: dt.datetime) -> pa.Table:
    from pymongoarrow.api import Schema, find_arrow_all

    schema = ORDERS.arrow_schema(with_partitions=False)
    read_schema = Schema({
        name: (pa.timestamp("ms", tz="UTC") if name == "order_ts" else schema.field(name).type) for name in _COLUMNS
    })
    query = {"order_ts": {"$gte": start, "$lt": end}, "$jsonSchema": ORDERS.json_schema()}
    table = find_arrow_all(db[ORDERS.collection], query, schema=read_schema, projection={c: 1 for c in _COLUMNS})
    return table.select(_COLUMNS)


def cold_orders(spark, store: ArchiveStore, start: dt.datetime, end: dt.datetime):
    """The archived orders of [start, end), or None when nothing is archived yet."""
    if not store.list_dirs(ORDERS.collection):
        return None
    root = store.uri(ORDERS.collection)
    frame = spark.read.schema(ORDERS.spark_ddl()).option("basePath", root).parquet(root)
    first_day, last_day = f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"
    return (
        frame.where(f"event_date >= '{first_day}' AND event_date <= '{last_day}'")  # partition pruning
        .where("raw_json IS NULL")
        .where(f"order_ts >= TIMESTAMP '{_utc_literal(start)}' AND order_ts < TIMESTAMP '{_utc_literal(end)}'")
        .select(*_COLUMNS)
    )


def _utc_literal(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S.%f}+00:00"


def regional_daily(spark, db, store: ArchiveStore, *, as_of: dt.datetime, days: int = DAYS) -> dict:
    """The ``history:regional_daily`` payload: one row per (date, region) for every day and region."""
    dates, start, end = window(as_of, days)
    hot = spark.createDataFrame(hot_orders(db, start, end), schema=", ".join(
        f"`{c}` {t}" for c, t in zip(_COLUMNS, ["STRING", "STRING", "BIGINT", "BIGINT", "DOUBLE", "TIMESTAMP"])))
    cold = cold_orders(spark, store, start, end)
    orders = hot if cold is None else cold.unionByName(hot)
    orders.dropDuplicates(["order_id"]).createOrReplaceTempView("history_orders")
    dcs = spark.createDataFrame([(d["dc_id"], d["region_id"]) for d in dimension_documents("dcs_dim")],
                                "dc_id STRING, region_id STRING")
    dcs.createOrReplaceTempView("history_dcs")
    rows = spark.sql(f"""
        SELECT CAST(to_date(from_utc_timestamp(o.order_ts, '{RULES.business_timezone}')) AS STRING) AS date,
               d.region_id,
               COUNT(*) AS orders,
               SUM(o.order_value) AS revenue,
               SUM(o.fulfilled_qty) AS units_fulfilled,
               SUM(o.requested_qty) AS units_requested
        FROM history_orders o JOIN history_dcs d ON o.dc_id = d.dc_id
        GROUP BY 1, 2
    """).collect()
    found = {(r["date"], r["region_id"]): r for r in rows}
    result = []
    for day in dates:
        for region in dimension_documents("regions_dim"):
            row = found.get((day.isoformat(), region["region_id"]))
            requested = row["units_requested"] if row else 0
            result.append({
                "date": day.isoformat(),
                "region_id": region["region_id"],
                "region_name": region["region_name"],
                "orders": int(row["orders"]) if row else 0,
                "revenue": round(float(row["revenue"] or 0.0), 2) if row else 0.0,
                "fill_rate": round(row["units_fulfilled"] / requested, 6) if requested else None,
            })
    return {"as_of": as_of.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), "days": days, "rows": result}


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
