"""Hot + cold analytical SQL (SPEC §9a; ``scbda sql``). No Dagster here.

Views, registered in the Spark session for one query:
- ``orders``, ``shipments``, ``inventory``: the well-formed documents of the Parquet archive ∪ MongoDB,
  de-duplicated by business id (an id in both stores, e.g. during a hand-over, is one row), with the archive's
  columns (SPEC §6 fields) plus ``event_date`` and ``hour`` (the archive's partition columns, computed for hot rows);
- ``orders_hourly``, ``shipments_history``: the history layer's aggregates (``scbda_assets.history``).

Read-only by construction (``sql_guard``): the text is parsed and allow-listed before anything runs, the session
has ``spark.sql.runSQLOnFiles=false``, and Spark is given the query nested as a subquery (``SELECT * FROM (…)``),
which its own grammar accepts only for a query. Pruning (``sql_pruning``) reads part of a view only when the query
provably drops every other row; the bounds' constants are evaluated by Spark. Hot orders come from a Parquet mirror
kept incrementally beside the archive (``sql_mirror``); hot shipments and inventory snapshots are staged as Parquet
for the query, beside the archive root, never inside it (``<root>.sql-staging/sql-*``, removed afterwards).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from pymongo.database import Database
from sqlglot import exp

from scbda_assets.archive.schema import INVENTORY, ORDERS, SHIPMENTS, CollectionSpec
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history.sql_guard import RefusedStatement, checked_query, statement_text, table_sources
from scbda_assets.history.sql_mirror import MIRRORED, hot_chunks, hot_schema, mirror_store, sync
from scbda_assets.history.sql_pruning import BoundExpressions, bounds_for
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.history.store import SHIPMENTS as SHIPMENTS_HISTORY

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


def evaluate_bounds(spark, bounds: BoundExpressions) -> TimeBounds:
    """The tightest bounds, each constant evaluated by Spark as the comparison coerces it (``CAST(… AS
    TIMESTAMP)`` in the session's time zone). A constant Spark cannot evaluate, or NULL, bounds nothing."""
    constants = [*bounds.lower, *bounds.upper]
    if not constants:
        return TimeBounds()
    from pyspark.errors import PySparkException

    columns = ", ".join(f"CAST(({c}) AS TIMESTAMP) AS b{i}" for i, c in enumerate(constants))
    try:
        (row,) = spark.sql(f"SELECT {columns}").toArrow().to_pylist()
    except PySparkException:
        return TimeBounds()  # the query itself will say what is wrong with it
    values = [row[f"b{i}"] for i in range(len(constants))]
    lower = [v for v in values[: len(bounds.lower)] if v is not None]
    upper = [v for v in values[len(bounds.lower):] if v is not None]
    return TimeBounds(max(lower, default=None), min(upper, default=None))


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


def _stage_hot(db: Database, staging: ArchiveStore, spec: CollectionSpec, bounds: TimeBounds, folder: str) -> int:
    target, _ = hot_schema(spec)
    path = f"{folder}/{spec.collection}.parquet"
    staging.create_dir(folder)
    rows = 0
    with pq.ParquetWriter(staging.path(path), target, filesystem=staging.fs) as writer:
        for chunk in hot_chunks(db, spec, bounds.mongo(spec.event_field)):
            writer.write_table(chunk)
            rows += chunk.num_rows
    return rows


def _hot(spark, db: Database, archive: ArchiveStore, spec: CollectionSpec, bounds: TimeBounds, staging: ArchiveStore,
         folder: str, now: dt.datetime):
    """The hot rows of a view: the mirror's files that can hold rows within ``bounds`` (orders), or the documents
    staged for this query (shipments, updated in place at receipt; inventory)."""
    if spec.collection in {s.collection for s in MIRRORED.values()}:
        files = [f for f in sync(db, archive, spec, now=now)
                 if (bounds.start is None or f.max_ts >= bounds.start) and (bounds.end is None or f.min_ts <= bounds.end)]
        mirror = mirror_store(archive)
        return spark.read.parquet(*(mirror.uri(f.name) for f in files)) if files else None
    if _stage_hot(db, staging, spec, bounds, folder):
        return spark.read.parquet(staging.uri(f"{folder}/{spec.collection}.parquet"))
    return None


def staging_store(archive: ArchiveStore) -> ArchiveStore:
    """Where hot rows are staged: a sibling of the archive root on the same filesystem, never inside it."""
    return ArchiveStore(f"{archive.root_uri}.sql-staging")


def register_views(spark, db: Database, archive: ArchiveStore, query: exp.Expression, staging: ArchiveStore,
                   folder: str, now: dt.datetime) -> list[str]:
    """Register the views the (checked) query reads; returns their names."""
    named = {t.name.lower() for t in table_sources(query)}
    registered = []
    for name, spec in VIEWS.items():
        if name not in named:
            continue
        bounds = evaluate_bounds(spark, bounds_for(query, name, spec.event_field))
        frame = _cold(spark, archive, spec, bounds)
        hot = _hot(spark, db, archive, spec, bounds, staging, folder, now)
        if hot is not None:
            frame = hot if frame is None else frame.unionByName(hot)
        if frame is None:
            frame = spark.createDataFrame([], spec.spark_ddl().replace("`_id` STRING, ", "").replace(
                ", `raw_json` STRING", ""))
        frame.dropDuplicates([spec.id_field]).createOrReplaceTempView(name)
        registered.append(name)
    history = history_database(db)
    for name, collection in AGGREGATE_VIEWS.items():
        if name in named:
            docs = list(history[collection].find({}, {"_id": 0}))
            table = pa.Table.from_pylist(docs) if docs else pa.table({"empty": pa.array([], pa.int32())})
            spark.createDataFrame(table).createOrReplaceTempView(name)
            registered.append(name)
    return registered


def run_sql(spark, db: Database, archive: ArchiveStore, query: str, *, max_rows: int | None = MAX_ROWS,
            now: dt.datetime | None = None) -> pa.Table:
    """Run one read-only analyst query over hot + cold at ``now`` (default: the wall clock); at most ``max_rows``
    rows (``None``: all of them).

    A statement that is not one read-only query raises :class:`RefusedStatement` before anything runs; a query Spark
    rejects raises :class:`SqlError`."""
    from pyspark.errors import PySparkException
    from pyspark.logger import PySparkLogger

    if not query.strip():
        raise SqlError("empty query: expected one SELECT statement, e.g. scbda sql \"SELECT COUNT(*) FROM orders\"")
    parsed = checked_query(query, frozenset(VIEWS) | frozenset(AGGREGATE_VIEWS))
    staging, folder = staging_store(archive), f"sql-{uuid.uuid4().hex[:8]}"
    # pyspark's own logger class: a plain logging.Logger under this name breaks every later query error
    # ("Logger._log() got an unexpected keyword argument 'errorClass'").
    logger = PySparkLogger.getLogger(_QUERY_LOGGER)
    previous = logger.disabled
    logger.disabled = True
    try:
        spark.conf.set("spark.sql.runSQLOnFiles", "false")  # defence in depth: no parquet.`/path` in this session
        register_views(spark, db, archive, parsed, staging, folder, now or dt.datetime.now(dt.UTC))
        try:
            # Nested, Spark's parser accepts only a query here: a command the checker mis-read fails to parse.
            frame = spark.sql(f"SELECT * FROM (\n{statement_text(query)}\n) AS scbda_query")
            return (frame if max_rows is None else frame.limit(max_rows)).toArrow()
        except PySparkException as error:
            raise SqlError(_one_line(error)) from None
    finally:
        logger.disabled = previous
        staging.delete_dir(folder)


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
