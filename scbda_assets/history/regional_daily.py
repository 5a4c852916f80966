"""Daily history per region over hot (MongoDB) + cold (Parquet archive) orders, de-duplicated by order_id.

The window is cut at the newest archive cutoff of any batch (``archived_until``): no order at or after it can be in
the archive, so that part is aggregated inside MongoDB (a few rows per day and DC, whatever the volume). Before it
the two stores may hold the same order (a batch between publishing its files and finishing its delete, a crash
there, a late event): the cold side is read with partition pruning (only ``event_date`` folders that can hold the
window), the hot orders of that part are staged as Parquet for Spark (bounded memory, no Arrow over the Connect
channel), and the union is de-duplicated by order_id, so an order in both stores counts once. Days are business
days in Asia/Karachi; an order belongs to the region of its DC. Malformed documents (``raw_json`` set in the
archive, not matching the schema in MongoDB) are skipped, as the KPIs skip them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.catalog import list_manifests
from scbda_assets.archive.schema import ORDERS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.domain.reference import RULES, dimension_documents
from scbda_assets.mongo_arrow import arrow_chunks

DAYS = 7
_COLUMNS = ["order_id", "dc_id", "requested_qty", "fulfilled_qty", "order_value", "order_ts"]
_SPARK_TYPES = ["STRING", "STRING", "BIGINT", "BIGINT", "DOUBLE", "TIMESTAMP"]
_DAILY_DDL = ("date STRING, dc_id STRING, orders BIGINT, revenue DOUBLE, units_fulfilled BIGINT, "
              "units_requested BIGINT")


def window(as_of: dt.datetime, days: int = DAYS) -> tuple[list[dt.date], dt.datetime, dt.datetime]:
    """The ``days`` business days ending with as_of's day (the last one partial); UTC bounds [start, as_of)."""
    zone = ZoneInfo(RULES.business_timezone)
    today = as_of.astimezone(zone).date()
    dates = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    start = dt.datetime.combine(dates[0], dt.time(), zone).astimezone(dt.UTC)
    return dates, start, as_of.astimezone(dt.UTC)


def _well_formed(start: dt.datetime, end: dt.datetime) -> dict:
    return {"order_ts": {"$gte": start, "$lt": end}, "$jsonSchema": ORDERS.json_schema()}


def archived_until(store: ArchiveStore) -> dt.datetime | None:
    """The newest cutoff of any batch, whatever its status: no order at or after it is in the archive."""
    return max((mf.parse_iso(m["cutoff"]) for m in list_manifests(store)), default=None)


def hot_daily(db, start: dt.datetime, end: dt.datetime) -> list[tuple]:
    """Orders of [start, end) per business day and DC, aggregated inside MongoDB (rows in _DAILY_DDL order)."""
    day = {"$dateToString": {"date": "$order_ts", "format": "%Y-%m-%d", "timezone": RULES.business_timezone}}
    pipeline = [
        {"$match": _well_formed(start, end)},
        {"$group": {"_id": {"date": day, "dc_id": "$dc_id"}, "orders": {"$sum": 1},
                    "revenue": {"$sum": "$order_value"}, "units_fulfilled": {"$sum": "$fulfilled_qty"},
                    "units_requested": {"$sum": "$requested_qty"}}},
    ]
    return [(row["_id"]["date"], row["_id"]["dc_id"], row["orders"], float(row["revenue"]), row["units_fulfilled"],
             row["units_requested"])
            for row in db[ORDERS.collection].aggregate(pipeline, allowDiskUse=True)]


def stage_hot_orders(db, store: ArchiveStore, start: dt.datetime, end: dt.datetime, relative: str) -> int:
    """Write the well-formed hot orders of [start, end) to a Parquet file for Spark, chunk by chunk; rows written."""
    from pymongoarrow.api import Schema

    schema = ORDERS.arrow_schema(with_partitions=False)
    read_schema = Schema({
        name: (pa.timestamp("ms", tz="UTC") if name == "order_ts" else schema.field(name).type) for name in _COLUMNS
    })
    target = pa.schema([(name, pa.timestamp("us", tz="UTC") if name == "order_ts" else schema.field(name).type)
                        for name in _COLUMNS])
    store.fs.create_dir(store.path(relative).rsplit("/", 1)[0], recursive=True)
    rows = 0
    with pq.ParquetWriter(store.path(relative), target, filesystem=store.fs) as writer:
        for chunk in arrow_chunks(db[ORDERS.collection], _well_formed(start, end), read_schema):
            writer.write_table(chunk.select(_COLUMNS).cast(target))
            rows += chunk.num_rows
    return rows


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
    boundary = archived_until(store)
    split = start if boundary is None else min(max(start, boundary), end)
    daily = spark.createDataFrame(hot_daily(db, split, end) if split < end else [], _DAILY_DDL)
    staged = f"{layout.STAGING_DIR}/history-{uuid.uuid4().hex[:8]}/hot_orders.parquet"
    try:
        if start < split:
            daily = daily.unionByName(_overlap_daily(spark, db, store, start, split, staged))
        daily.createOrReplaceTempView("history_daily")
        dcs = spark.createDataFrame([(d["dc_id"], d["region_id"]) for d in dimension_documents("dcs_dim")],
                                    "dc_id STRING, region_id STRING")
        dcs.createOrReplaceTempView("history_dcs")
        rows = spark.sql("""
            SELECT h.date, d.region_id, SUM(h.orders) AS orders, SUM(h.revenue) AS revenue,
                   SUM(h.units_fulfilled) AS units_fulfilled, SUM(h.units_requested) AS units_requested
            FROM history_daily h JOIN history_dcs d ON h.dc_id = d.dc_id
            GROUP BY 1, 2
        """).collect()
    finally:
        store.delete_dir(staged.rsplit("/", 1)[0])
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


def _overlap_daily(spark, db, store: ArchiveStore, start: dt.datetime, end: dt.datetime, staged: str):
    """Per business day and DC over [start, end), where both stores may hold an order: cold rows and staged hot
    rows, de-duplicated by order_id."""
    orders = cold_orders(spark, store, start, end)
    if stage_hot_orders(db, store, start, end, staged):
        ddl = ", ".join(f"`{c}` {t}" for c, t in zip(_COLUMNS, _SPARK_TYPES, strict=True))
        hot = spark.read.schema(ddl).parquet(store.uri(staged))
        orders = hot if orders is None else orders.unionByName(hot)
    if orders is None:
        return spark.createDataFrame([], _DAILY_DDL)
    orders.dropDuplicates(["order_id"]).createOrReplaceTempView("history_overlap_orders")
    return spark.sql(f"""
        SELECT CAST(to_date(from_utc_timestamp(order_ts, '{RULES.business_timezone}')) AS STRING) AS date, dc_id,
               COUNT(*) AS orders, SUM(order_value) AS revenue, SUM(fulfilled_qty) AS units_fulfilled,
               SUM(requested_qty) AS units_requested
        FROM history_overlap_orders GROUP BY 1, 2
    """)


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
