"""Hot + cold analytical SQL (SPEC §9a; ``scbda sql``). No Dagster here.

Views, registered in the Spark session for one query:
- ``orders``, ``shipments``, ``inventory``: the well-formed documents of the Parquet archive ∪ MongoDB,
  de-duplicated by business id (an id in both stores, e.g. during a hand-over, is one row), with the archive's
  columns (SPEC §6 fields) plus ``event_date`` and ``hour`` (the archive's partition columns, computed for hot rows);
- ``orders_hourly``, ``shipments_history``: the history layer's aggregates (``scbda_assets.history``).

Pruning: a comparison of a view's event-time field with a literal (``order_ts >= '2026-11-20'``,
``shipment_ts BETWEEN TIMESTAMP '…' AND '…'``) bounds which ``event_date`` folders Spark lists and which hot
documents are read (by the event-time index). Filters on ``event_date`` / ``hour`` prune the archive directly as well.
The hot rows of a view are staged as Parquet next to the archive (``_staging/sql-*``, removed afterwards): memory
stays bounded and nothing crosses the Spark Connect channel row by row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pymongo.database import Database

from scbda_assets.archive import layout
from scbda_assets.archive.schema import INVENTORY, ORDERS, SHIPMENTS, CollectionSpec
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.history.store import SHIPMENTS as SHIPMENTS_HISTORY
from scbda_assets.timeutil import parse_iso
from scbda_assets.mongo_arrow import arrow_chunks

VIEWS: dict[str, CollectionSpec] = {"orders": ORDERS, "shipments": SHIPMENTS, "inventory": INVENTORY}
AGGREGATE_VIEWS = {"orders_hourly": ORDERS_HOURLY, "shipments_history": SHIPMENTS_HISTORY}
# pyspark logs every failed query with its JVM stack trace at ERROR; a bad query is one line (SqlError) instead.
_QUERY_LOGGER = "SQLQueryContextLogger"
MAX_ROWS = 10_000


class SqlError(ValueError):
    """A query Spark rejected. ``str(error)`` is one line."""


@dataclasses.dataclass(frozen=True)
class TimeBounds:
    start: dt.datetime | None = None  # inclusive lower bound (widened to the day for folders)
    end: dt.datetime | None = None  # inclusive upper bound

    def mongo(self, field: str) -> dict:
        bounds = {}
        if self.start:
            bounds["$gte"] = self.start
        if self.end:
            bounds["$lte"] = self.end
        return {field: bounds} if bounds else {}


_LITERAL = r"(?:TIMESTAMP\s*|DATE\s*)?'([^']+)'"


def time_bounds(query: str, field: str) -> TimeBounds:
    """The tightest literal bounds the query puts on ``field`` (only ANDed-looking comparisons are read; a bound
    that cannot be parsed is ignored, which only means less pruning)."""
    start = end = None
    text = re.sub(r"\s+", " ", query)
    if re.search(rf"\b{field}\b[^;]*\bOR\b", text, flags=re.IGNORECASE):
        return TimeBounds()  # an OR could widen the range: no pruning rather than a wrong one
    for low, high in re.findall(rf"\b{field}\s+BETWEEN\s+{_LITERAL}\s+AND\s+{_LITERAL}", text, flags=re.I):
        start, end = _tighter(start, _parse(low), max), _tighter(end, _parse(high), min)
    for op, value in re.findall(rf"\b{field}\s*(>=|<=|>|<|=)\s*{_LITERAL}", text, flags=re.IGNORECASE):
        moment = _parse(value)
        if op in (">", ">=", "="):
            start = _tighter(start, moment, max)
        if op in ("<", "<=", "="):
            end = _tighter(end, moment, min)
    return TimeBounds(start, end)


def _parse(value: str) -> dt.datetime | None:
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _tighter(current, new, pick):
    if new is None:
        return current
    return new if current is None else pick(current, new)


def _cold(spark, archive: ArchiveStore, spec: CollectionSpec, bounds: TimeBounds):
    if not archive.list_dirs(spec.collection):
        return None
    root = archive.uri(spec.collection)
    frame = spark.read.schema(spec.spark_ddl()).option("basePath", root).parquet(root)
    if bounds.start:
        frame = frame.where(f"event_date >= '{bounds.start.astimezone(dt.UTC):%Y-%m-%d}'")
    if bounds.end:
        frame = frame.where(f"event_date <= '{bounds.end.astimezone(dt.UTC):%Y-%m-%d}'")
    return frame.where("raw_json IS NULL").drop("_id", "raw_json")


def _stage_hot(db: Database, archive: ArchiveStore, spec: CollectionSpec, bounds: TimeBounds, folder: str) -> int:
    typed = spec.arrow_schema(with_partitions=False)
    fields = [f for f in typed if f.name in spec.field_names]
    read = {f.name: (pa.timestamp("ms", tz="UTC") if pa.types.is_timestamp(f.type) else f.type) for f in fields}
    from pymongoarrow.api import Schema

    target = pa.schema([*fields, ("event_date", pa.string()), ("hour", pa.string())])
    path = f"{folder}/{spec.collection}.parquet"
    archive.fs.create_dir(archive.path(folder), recursive=True)
    query = {"$jsonSchema": spec.json_schema(), **bounds.mongo(spec.event_field)}
    rows = 0
    with pq.ParquetWriter(archive.path(path), target, filesystem=archive.fs) as writer:
        for chunk in arrow_chunks(db[spec.collection], query, Schema(read)):
            chunk = chunk.select(list(read)).cast(pa.schema(fields))
            moments = chunk[spec.event_field]  # UTC: the partition columns the archive writes, vectorized
            chunk = chunk.append_column("event_date", pc.strftime(moments, format="%Y-%m-%d"))
            chunk = chunk.append_column("hour", pc.strftime(moments, format="%H"))
            writer.write_table(chunk)
            rows += chunk.num_rows
    return rows


def register_views(spark, db: Database, archive: ArchiveStore, query: str, folder: str) -> list[str]:
    """Register the views the query names; returns their names."""
    registered = []
    for name, spec in VIEWS.items():
        if not re.search(rf"\b{name}\b", query, flags=re.IGNORECASE):
            continue
        bounds = time_bounds(query, spec.event_field)
        frame = _cold(spark, archive, spec, bounds)
        if _stage_hot(db, archive, spec, bounds, folder):
            hot = spark.read.parquet(archive.uri(f"{folder}/{spec.collection}.parquet"))
            frame = hot if frame is None else frame.unionByName(hot)
        if frame is None:
            frame = spark.createDataFrame([], spec.spark_ddl().replace("`_id` STRING, ", "").replace(
                ", `raw_json` STRING", ""))
        frame.dropDuplicates([spec.id_field]).createOrReplaceTempView(name)
        registered.append(name)
    history = history_database(db)
    for name, collection in AGGREGATE_VIEWS.items():
        if re.search(rf"\b{name}\b", query, flags=re.IGNORECASE):
            docs = list(history[collection].find({}, {"_id": 0}))
            table = pa.Table.from_pylist(docs) if docs else pa.table({"empty": pa.array([], pa.int32())})
            spark.createDataFrame(table).createOrReplaceTempView(name)
            registered.append(name)
    return registered


def run_sql(spark, db: Database, archive: ArchiveStore, query: str, *, max_rows: int = MAX_ROWS) -> pa.Table:
    """Run one analyst query over hot + cold; at most ``max_rows`` rows. Bad SQL raises :class:`SqlError`."""
    from pyspark.errors import PySparkException
    from pyspark.logger import PySparkLogger

    if not query.strip():
        raise SqlError("empty query: expected one SELECT statement, e.g. scbda sql \"SELECT COUNT(*) FROM orders\"")
    folder = f"{layout.STAGING_DIR}/sql-{uuid.uuid4().hex[:8]}"
    # pyspark's own logger class: a plain logging.Logger under this name breaks every later query error
    # ("Logger._log() got an unexpected keyword argument 'errorClass'").
    logger = PySparkLogger.getLogger(_QUERY_LOGGER)
    previous = logger.disabled
    logger.disabled = True
    try:
        register_views(spark, db, archive, query, folder)
        try:
            return spark.sql(query).limit(max_rows).toArrow()
        except PySparkException as error:
            raise SqlError(_one_line(error)) from None
    finally:
        logger.disabled = previous
        archive.delete_dir(folder)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def format_table(table: pa.Table) -> str:
    """A plain text table (numbers right-aligned, never cut off)."""
    columns = table.column_names
    rows = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "-+-".join("-" * w for w in widths)]
    for row in rows:
        lines.append(" | ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths)))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
