"""Order sums per (sku_id, dc_id) over any range, from whichever store holds the orders (no Dagster here).

``order_sums(db, archive, start, end)`` is the one definition of "the orders of [start, end)": the well-formed
archived orders of the hour folders the range touches, plus the well-formed orders in MongoDB, de-duplicated by
``order_id`` (an order in both stores — a hand-over between writing Parquet and deleting, a batch re-run — counts
once). Hours that have no archive file are aggregated inside MongoDB (``$group``), so building an hour of the live
store never moves its orders out of the database. ``build_hours`` stores the sums of whole hours in
``orders_hourly``; an hour is always rebuilt whole from the raw events, so a rebuild (late events, an archive batch,
a re-run) replaces its rows and counts every order exactly once.

Each stored row also keeps ``requested_by_minute`` (60 integers: the units requested in each minute of the hour), so
the 7-day demand window, whose first hour is cut at T − 7 d, is summed from stored rows at any event rate (the
arrays are dropped once an hour is older than ``MINUTES_KEPT``). An hour whose orders were all folded into the minute
rollup in this same run (``rollup_from``) is summed from the rollup's few thousand rows instead of the hour's orders:
at 100× the rate an hour holds millions of orders, and building it was a minute-long stall once an hour.

Well-formed = the archive's own ``$jsonSchema`` (``raw_json`` null once archived), so an order is counted, or
skipped, identically before and after archival.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from pymongo import DeleteMany, ReplaceOne
from pymongo.database import Database
from pymongoarrow.api import Schema, aggregate_arrow_all

from scbda_assets.archive.schema import ORDERS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import cold
from scbda_assets.history.store import HOURS, ORDERS_HOURLY
from scbda_assets.kpis import pushdown, rollup
from scbda_assets.timeutil import HOUR, ceil_hour, floor_hour, hours_touching, utc

SUMS = ("orders", "units_requested", "units_fulfilled", "revenue", "lost_revenue", "orders_in_full")
SUMS_SCHEMA = pa.schema([
    ("sku_id", pa.string()), ("dc_id", pa.string()),
    ("orders", pa.int64()), ("units_requested", pa.int64()), ("units_fulfilled", pa.int64()),
    ("revenue", pa.float64()), ("lost_revenue", pa.float64()), ("orders_in_full", pa.int64()),
])
MINUTES_KEPT = dt.timedelta(days=8)  # the 7-day demand window's first hour, with a day to spare
_RAW_COLUMNS = ["order_id", "sku_id", "dc_id", "requested_qty", "fulfilled_qty", "order_value", "lost_revenue",
                "order_ts"]
_RAW_SCHEMA = pa.schema([
    ("order_id", pa.string()), ("sku_id", pa.string()), ("dc_id", pa.string()), ("requested_qty", pa.int64()),
    ("fulfilled_qty", pa.int64()), ("order_value", pa.float64()), ("lost_revenue", pa.float64()),
    ("order_ts", pa.timestamp("ms", tz="UTC")),
])


def well_formed(start: dt.datetime, end: dt.datetime) -> dict:
    return {"order_ts": {"$gte": start, "$lt": end}, "$jsonSchema": ORDERS.json_schema()}


def _mongo_group(db: Database, start: dt.datetime, end: dt.datetime, *, by_minute: bool) -> list[dict]:
    """Per pair (and ``by_minute``: per order minute) sums of the well-formed orders of [start, end), in MongoDB."""
    key = {"sku_id": "$sku_id", "dc_id": "$dc_id"}
    if by_minute:
        key["minute"] = {"$dateTrunc": {"date": "$order_ts", "unit": "minute"}}
    pipeline = [{"$match": well_formed(start, end)}, {"$group": {"_id": key, **pushdown.order_sums_of_documents()}}]
    return [_minute_row(doc) for doc in db[ORDERS.collection].aggregate(pipeline, allowDiskUse=True)]


def _rollup_minutes(db: Database, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per pair and order minute sums of [start, end) from the minute rollup (rows per ingest minute added up)."""
    pipeline = [
        {"$match": {"order_minute": {"$gte": start, "$lt": end}}},
        {"$group": {"_id": {"sku_id": "$sku_id", "dc_id": "$dc_id", "minute": "$order_minute"},
                    **{name: {"$sum": f"${name}"} for name in SUMS}}},
    ]
    return [_minute_row(doc) for doc in db[rollup.ROLLUP].aggregate(pipeline)]


def _minute_row(doc: dict) -> dict:
    row = {**doc.pop("_id"), **doc}
    if "minute" in row:
        row["minute"] = utc(row["minute"])
    return row


def hour_rows(minute_rows: list[dict]) -> dict[dt.datetime, list[dict]]:
    """Minute rows -> per hour, per pair: the sums of the hour and ``requested_by_minute``."""
    hours: dict[dt.datetime, dict[tuple, dict]] = {}
    for row in minute_rows:
        hour = floor_hour(row["minute"])
        pair = hours.setdefault(hour, {}).setdefault((row["sku_id"], row["dc_id"]), {
            "sku_id": row["sku_id"], "dc_id": row["dc_id"], **dict.fromkeys(SUMS, 0),
            "requested_by_minute": [0] * 60})
        for name in SUMS:
            pair[name] += row[name]
        pair["requested_by_minute"][row["minute"].minute] += row["units_requested"]
    return {hour: list(pairs.values()) for hour, pairs in hours.items()}


def _hot_rows(db: Database, start: dt.datetime, end: dt.datetime) -> pa.Table:
    pipeline = [{"$match": well_formed(start, end)}, {"$project": {"_id": 0, **{c: 1 for c in _RAW_COLUMNS}}}]
    table = aggregate_arrow_all(db[ORDERS.collection], pipeline, schema=Schema(dict(zip(_RAW_SCHEMA.names,
                                                                                     _RAW_SCHEMA.types))))
    return table.select(_RAW_SCHEMA.names).cast(_RAW_SCHEMA)


def _cold_rows(archive: ArchiveStore, files: list[str], start: dt.datetime, end: dt.datetime) -> pa.Table:
    table = cold.read_files(archive, files, _RAW_COLUMNS, _RAW_SCHEMA)
    in_range = pc.and_(pc.greater_equal(table["order_ts"], pa.scalar(start, pa.timestamp("ms", tz="UTC"))),
                       pc.less(table["order_ts"], pa.scalar(end, pa.timestamp("ms", tz="UTC"))))
    return table.filter(in_range)


def _sum_rows(rows: pa.Table, *, by_minute: bool = False) -> list[dict]:
    """Per pair (and ``by_minute``: per order minute) sums of raw order rows (already de-duplicated)."""
    if rows.num_rows == 0:
        return []
    full = pc.cast(pc.equal(rows["fulfilled_qty"], rows["requested_qty"]), pa.int64())
    rows = rows.append_column("in_full", full)
    keys = ["sku_id", "dc_id"]
    if by_minute:
        rows = rows.append_column("minute", pc.floor_temporal(rows["order_ts"], unit="minute"))
        keys.append("minute")
    grouped = rows.group_by(keys).aggregate([
        ("order_id", "count"), ("requested_qty", "sum"), ("fulfilled_qty", "sum"), ("order_value", "sum"),
        ("lost_revenue", "sum"), ("in_full", "sum"),
    ])
    out = []
    for row in grouped.to_pylist():
        out.append({"sku_id": row["sku_id"], "dc_id": row["dc_id"], "orders": row["order_id_count"],
                    "units_requested": row["requested_qty_sum"], "units_fulfilled": row["fulfilled_qty_sum"],
                    "revenue": row["order_value_sum"], "lost_revenue": row["lost_revenue_sum"],
                    "orders_in_full": row["in_full_sum"], **({"minute": utc(row["minute"])} if by_minute else {})})
    return out


def _dedup_union(hot: pa.Table, cold_rows: pa.Table) -> pa.Table:
    """Cold rows once per id, plus the hot rows whose id is not archived."""
    if cold_rows.num_rows:
        cold_rows = cold_rows.group_by("order_id", use_threads=False).aggregate(
            [(name, "first") for name in _RAW_SCHEMA.names if name != "order_id"]
        ).rename_columns(["order_id", *[n for n in _RAW_SCHEMA.names if n != "order_id"]]).select(_RAW_SCHEMA.names)
    fresh = hot.filter(pc.invert(pc.is_in(hot["order_id"], value_set=cold_rows["order_id"])))
    return pa.concat_tables([cold_rows.cast(_RAW_SCHEMA), fresh])


def order_sums(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per (sku_id, dc_id) sums of the orders of [start, end) (any range), hot ∪ cold, de-duplicated."""
    if end <= start:
        return []
    files = [f for hour in hours_touching(start, end) for f in cold.hour_files(archive, ORDERS.collection, hour)]
    if not files:
        return _mongo_group(db, start, end, by_minute=False)
    return _sum_rows(_dedup_union(_hot_rows(db, start, end), _cold_rows(archive, files, start, end)))




def build_hours(history: Database, db: Database, archive: ArchiveStore | None, hours: list[dt.datetime], *,
                now: dt.datetime, rollup_from: dt.datetime | None = None,
                stamped: dt.datetime | None = None) -> dict:
    """(Re)build the stored sums of whole ``hours``. Each build records ``built_at`` = ``now`` and ``stamped_at``
    = ``stamped`` (default ``now``): the same moment on the writer's stamp clock, read before the orders
    (``kpis/rollup.stamp_now``), which the late-order scan compares ``ingested_at`` with. An hour with archive files: Parquet ∪ MongoDB, de-duplicated.
    Otherwise, runs of consecutive hours are one read: from the minute rollup when ``rollup_from`` (the coverage of a
    fold done in this run, at ``now``) is at or before them, else one MongoDB $group."""
    hours = sorted(set(hours))
    report = {"hours": len(hours), "from_archive": 0, "from_rollup": 0, "orders": 0}
    run: list[dt.datetime] = []

    def covered(hour: dt.datetime) -> bool:
        return rollup_from is not None and hour >= rollup_from

    def from_both(hour: dt.datetime) -> None:
        # MongoDB first, then the file listing: an archive batch publishes its files before MongoDB deletes, so an
        # order missing from this read is in a file listed after it (read both ways, de-duplicated by id).
        hot = _hot_rows(db, hour, hour + HOUR)
        files = cold.hour_files(archive, ORDERS.collection, hour)
        union = _dedup_union(hot, _cold_rows(archive, files, hour, hour + HOUR))
        report["from_archive"] += 1
        report["orders"] += _store_hour(history, hour, hour_rows(_sum_rows(union, by_minute=True)).get(hour, []),
                                        now=now, stamped=stamped, sources=["parquet", "mongodb"])

    def flush_run():
        if run:
            start, end = run[0], run[-1] + HOUR
            if covered(start):
                minute_rows = _rollup_minutes(db, start, end)
                report["from_rollup"] += len(run)
            else:
                minute_rows = _mongo_group(db, start, end, by_minute=True)
            built = hour_rows(minute_rows)
            for hour in run:
                if cold.hour_files(archive, ORDERS.collection, hour):  # archived while MongoDB was read: again
                    from_both(hour)
                    continue
                report["orders"] += _store_hour(history, hour, built.get(hour, []), now=now, stamped=stamped,
                                                sources=["mongodb"])
            run.clear()

    for hour in hours:
        files = cold.hour_files(archive, ORDERS.collection, hour)
        if not files:
            if run and (run[-1] + HOUR != hour or covered(run[-1]) != covered(hour)):
                flush_run()
            run.append(hour)
            continue
        flush_run()
        from_both(hour)
    flush_run()
    return report


def drop_old_minutes(history: Database, *, now: dt.datetime) -> int:
    """Bound the layer: hours older than ``MINUTES_KEPT`` keep their sums, not their minutes."""
    result = history[ORDERS_HOURLY].update_many(
        {"hour": {"$lt": floor_hour(now) - MINUTES_KEPT}, "requested_by_minute": {"$exists": True}},
        {"$unset": {"requested_by_minute": ""}})
    return result.modified_count


def requested_since(history: Database, hour: dt.datetime, minute: int) -> list[dict] | None:
    """Per pair: units requested in minutes ``minute``..59 of a stored ``hour``; None when the hour is not stored
    with its minutes (built before minutes were kept, or older than ``MINUTES_KEPT``)."""
    rows = list(history[ORDERS_HOURLY].find({"hour": hour}, {"sku_id": 1, "dc_id": 1, "requested_by_minute": 1}))
    if any("requested_by_minute" not in row for row in rows):
        return None
    return [{"sku_id": row["sku_id"], "dc_id": row["dc_id"],
             "units_requested": sum(row["requested_by_minute"][minute:])} for row in rows]


def _store_hour(history: Database, hour: dt.datetime, rows: list[dict], *, now: dt.datetime,
                stamped: dt.datetime | None = None,
                sources: list[str]) -> int:
    """Replace the rows of one hour: upsert the new rows, drop the pairs that are gone, record the build."""
    stamp = f"{hour:%Y-%m-%dT%H}"
    ids = []
    operations = []
    for row in rows:
        doc_id = f"{stamp}|{row['sku_id']}|{row['dc_id']}"
        ids.append(doc_id)
        operations.append(ReplaceOne({"_id": doc_id}, {**row, "hour": hour}, upsert=True))
    operations.append(DeleteMany({"hour": hour, "_id": {"$nin": ids}}))
    history[ORDERS_HOURLY].bulk_write(operations, ordered=True)
    orders = sum(row["orders"] for row in rows)
    history[HOURS].replace_one({"_id": f"orders|{stamp}"},
                               {"kind": "orders", "hour": hour, "built_at": now, "stamped_at": stamped or now,
                                "orders": orders, "sources": sources},
                               upsert=True)
    return orders


def stored_hours(history: Database, start: dt.datetime, end: dt.datetime) -> set[dt.datetime]:
    return {utc(doc["hour"]) for doc in history[HOURS].find({"kind": "orders", "hour": {"$gte": start, "$lt": end}},
                                                            {"hour": 1})}


__all__ = ["SUMS", "build_hours", "ceil_hour", "order_sums", "requested_since", "stored_hours"]
