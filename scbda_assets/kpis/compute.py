"""Compute KPIs: run the MongoDB pushdown pipelines into Arrow, then the Spark SQL formulas (no Dagster here).

``compute_kpis(db, spark, as_of, names, now=...)`` reads only what the requested KPIs need: the live window
[E − 15 min, E) from MongoDB, in parallel threads (order sums from the minute rollup, ``rollup.py``), and the
history window [E − D, E) from the history layer (``scbda_assets.history``: hot + cold, brought up to date first),
where E = ``data_until`` (default: the as-of time T). It evaluates every requested KPI in one Spark action and
returns JSON-ready rows per KPI plus the headline numbers of the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from pymongo.database import Database
from pymongoarrow.api import Schema, aggregate_arrow_all

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import HEADLINE_FIELDS, KPI_NAMES
from scbda_assets.decisions import inputs as decision_inputs
from scbda_assets.domain.reference import RAMADAN_RANGES
from scbda_assets.history import cold as history_cold
from scbda_assets.history import live_window, maintain
from scbda_assets.history import read as history_read
from scbda_assets.history import shipments as history_shipments
from scbda_assets.kpis import pushdown, rollup, sql
from scbda_assets.timeutil import hours_touching, iso

DAY = dt.timedelta(days=1)
DEMAND_DAYS = 7
DEFAULT_SUPPLIER_WINDOW_DAYS = 30
GRID_BLOCKS = 5000  # blocks the count distribution is summed over per pair (kpis/sql.py): exact below 5000 units
HISTORY = "history"  # marks an input read from the history layer rather than pushed down to MongoDB
# live-window inputs that have a hot ∪ cold reader, for a window the archive holds part of
_FROM_BOTH = {"inventory": live_window.latest_inventory, "orders": live_window.order_totals}


@dataclasses.dataclass(frozen=True)
class KpiSpec:
    name: str
    window_minutes: int
    sql: str
    inputs: tuple[str, ...]  # input frames the SQL binds (keys of ``_INPUTS``)
    history_days: str | None = None  # which history window the payload's history_days reports: demand / supplier

    @property
    def collections(self) -> tuple[str, ...]:
        """The MongoDB collections (= upstream assets) this KPI reads."""
        return tuple(sorted({_INPUTS[name][0] for name in self.inputs}))


# Input frame -> (collection, pushdown builder taking (start, end), or None for a dimension read whole).
_INPUTS = {
    "inventory": ("inventory_fact", pushdown.latest_inventory),
    "orders": ("orders_fact", pushdown.order_totals),
    "created": ("shipments_fact", pushdown.shipments_created),
    "received": ("shipments_fact", pushdown.shipments_received),
    "regions": ("regions_dim", None),
    "dcs": ("dcs_dim", None),
    "skus": ("skus_dim", None),
    "suppliers": ("suppliers_dim", None),
    # history inputs: the asset that holds them (the history layer, ``scbda_assets.history.assets``)
    "demand": ("orders_hourly", HISTORY),
    "daily_demand": ("orders_hourly", HISTORY),
    "covered_days": ("orders_hourly", HISTORY),
    "shipments": ("shipments_history", HISTORY),
    "forecast": ("orders_hourly", HISTORY),  # decisions/inputs.py: the demand forecast from the hourly sums
    "forecast_pairs": ("orders_hourly", HISTORY),
}
_HISTORY_SCHEMAS = {
    "demand": pa.schema([("sku_id", pa.string()), ("dc_id", pa.string()), ("units_requested", pa.int64())]),
    "daily_demand": pa.schema([("day", pa.string()), ("sku_id", pa.string()), ("dc_id", pa.string()),
                               ("units_requested", pa.int64())]),
    "covered_days": pa.schema([("day", pa.string())]),
    "shipments": pa.schema([("supplier_id", pa.string()), ("sku_id", pa.string()), ("dc_id", pa.string()),
                            ("quantity", pa.int64()), ("planned_lead_time_days", pa.float64()),
                            ("shipment_ms", pa.int64()), ("expected_ms", pa.int64()), ("actual_ms", pa.int64())]),
}

KPIS: dict[str, KpiSpec] = {
    spec.name: spec
    for spec in (
        KpiSpec("inventory_level", 15, sql.INVENTORY_LEVEL, ("inventory", "skus", "dcs", "demand"), "demand"),
        KpiSpec("stockout_risk", 15, sql.STOCKOUT_RISK,
                ("inventory", "orders", "skus", "dcs", "demand", "daily_demand", "covered_days", "shipments",
                 "forecast", "forecast_pairs"),
                "demand"),
        KpiSpec("supplier_performance", 30, sql.SUPPLIER_PERFORMANCE, ("shipments", "suppliers"), "supplier"),
        KpiSpec("dc_utilization", 15, sql.DC_UTILIZATION, ("inventory", "skus", "dcs", "shipments")),
        KpiSpec("regional_fulfillment", 15, sql.REGIONAL_FULFILLMENT, ("orders", "regions", "dcs", "skus")),
    )
}


@dataclasses.dataclass(frozen=True)
class KpiResult:
    name: str
    as_of: dt.datetime
    window_minutes: int
    rows: list[dict]
    data_until: dt.datetime | None = None  # None: = as_of
    history_days: float | None = None  # KPIs over the history window

    def payload(self) -> dict:
        """The Redis value (SPEC §10)."""
        body = {"as_of": iso(self.as_of), "data_until": iso(self.data_until or self.as_of),
                "window_minutes": self.window_minutes, "rows": self.rows}
        if self.name == "stockout_risk":
            body["alert_count"] = alert_count(self.rows)
        if self.history_days is not None:
            body["history_days"] = self.history_days
        return body


@dataclasses.dataclass(frozen=True)
class KpiRun:
    as_of: dt.datetime
    results: dict[str, KpiResult]
    input_rows: dict[str, int]  # pre-aggregated rows read per input frame; "orders_rollup_fold": orders the fold read
    mongo_seconds: float
    spark_seconds: float
    orders_from: str = "facts"  # where the order sums came from: "rollup" or "facts"
    input_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per MongoDB query (and the fold)
    data_until: dt.datetime | None = None
    history: dict = dataclasses.field(default_factory=dict)  # what the history layer did and read




def alert_count(stockout_rows: list[dict]) -> int:
    return sum(1 for row in stockout_rows if row["severity"] != "ok")


def compute_kpis(
    db: Database, spark, as_of: dt.datetime, names: tuple[str, ...] = KPI_NAMES, *, now: dt.datetime,
    archive: ArchiveStore | None = None, data_until: dt.datetime | None = None, orders_from: str = "rollup",
    supplier_window_days: int = DEFAULT_SUPPLIER_WINDOW_DAYS, thresholds: dict | None = None,
    ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES,
) -> KpiRun:
    """The requested KPIs at as-of time ``as_of`` (tz-aware), in one Spark session, over the data up to
    ``data_until`` (<= as_of; default as_of). ``archive``: the Parquet archive (None: MongoDB only).

    ``orders_from="rollup"`` (default) reads order sums from the minute rollup when it covers the window (folding in
    new orders first), ``"facts"`` always aggregates ``orders_fact`` directly (the reference, and the benchmark's
    comparison). ``now`` is the wall time (the rollup and the history layer seal by it); a fixed-date caller
    passes T. ``thresholds`` overrides ``sql.THRESHOLDS`` (the settings' stockout probabilities); ``ramadan``:
    the Ramadan ranges the forecast divides out."""
    unknown = sorted(set(names) - set(KPIS))
    if unknown:
        raise ValueError(f"unknown KPI {unknown[0]!r}: expected one of {', '.join(KPI_NAMES)}")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    if orders_from not in ("rollup", "facts"):
        raise ValueError(f"orders_from={orders_from!r}: expected 'rollup' or 'facts'")
    specs = [KPIS[name] for name in KPI_NAMES if name in names]
    if not specs:
        raise ValueError(f"no KPI requested: expected some of {', '.join(KPI_NAMES)}")
    end = min(data_until, as_of) if data_until is not None else as_of

    started = time.perf_counter()
    keys = {_query_key(spec, name) for spec in specs for name in spec.inputs}
    seconds: dict[str, float] = {}
    use_rollup = False
    folded = None
    if orders_from == "rollup" and any(name == "orders" for name, _ in keys):
        folded = rollup.fold_new_orders(db, now=now)
        seconds["orders_rollup_fold"] = time.perf_counter() - started
        windows = [minutes for name, minutes in keys if name == "orders"]
        use_rollup = all(rollup.covers(folded, end - dt.timedelta(minutes=m)) for m in windows)
    pushed = {key for key in keys if _INPUTS[key[0]][1] is not HISTORY}
    queries = {key: _query(key, end, use_rollup) for key in pushed}
    # A window in the past may lie in an hour archived since: read it from both stores (history/live_window.py)
    both = {key for key in queries if key[0] in _FROM_BOTH and live_window.archive_holds_part(
        archive, queries[key].collection, end - dt.timedelta(minutes=key[1]), end)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_timed_from_both, db, archive, key, end, queries[key]) if key in both
                   else pool.submit(_timed_aggregate, db, query) for key, query in queries.items()}
        tables = {}
        for key, future in futures.items():
            tables[key], seconds[_label(key)] = future.result()
        wanted = {name for name, _ in keys if _INPUTS[name][1] is HISTORY}
        history: dict = {}
        if wanted:
            history_started = time.perf_counter()
            history_tables, history = history_inputs(db, archive, end, wanted, now=now,
                                                     supplier_window_days=supplier_window_days,
                                                     covered_from=folded["covered_from"] if folded else None,
                                                     ramadan=ramadan)
            tables.update({(name, 0): table for name, table in history_tables.items()})
            seconds["history"] = time.perf_counter() - history_started
    mongo_seconds = time.perf_counter() - started

    started = time.perf_counter()
    params = {"end_ms": _ms(end), "history_days": history.get("demand_history_days", 1.0),
              "history_start_ms": _ms(end - supplier_window_days * DAY),
              "live_start_ms": _ms(end - dt.timedelta(minutes=KPIS["supplier_performance"].window_minutes)),
              "forecast_hours": float(decision_inputs.HORIZON_HOURS), "grid_blocks": GRID_BLOCKS,
              **sql.THRESHOLDS, **(thresholds or {})}
    rows = _evaluate(spark, specs, tables, params)
    history_days = {"demand": history.get("demand_history_days"), "supplier": float(supplier_window_days)}
    results = {spec.name: KpiResult(spec.name, as_of, spec.window_minutes,
                                    sorted((_clean(row) for row in rows[spec.name]), key=sql.ROW_ORDER[spec.name]),
                                    data_until=end,
                                    history_days=history_days[spec.history_days] if spec.history_days else None)
               for spec in specs}
    spark_seconds = time.perf_counter() - started
    input_rows = {_label(key): table.num_rows for key, table in tables.items()}
    if folded is not None:
        input_rows["orders_rollup_fold"] = folded["documents_read"]  # orders the fold read (0: nothing new)
    return KpiRun(as_of, results, input_rows, mongo_seconds, spark_seconds,
                  orders_from="rollup" if use_rollup else "facts",
                  input_seconds={label: round(value, 4) for label, value in seconds.items()},
                  data_until=end, history=history)


def demand_history_days(earliest: dt.datetime | None, end: dt.datetime) -> float:
    """min(7, days between the store's earliest order and E), at least 1/24 (SPEC §9, KPI 2)."""
    if earliest is None:
        return 1 / 24
    return max(1 / 24, min(float(DEMAND_DAYS), (end - earliest) / DAY))


def covered_days(earliest: dt.datetime | None, end: dt.datetime) -> list[dt.datetime]:
    """The complete UTC days of [floor_day(E) − 7 d, floor_day(E)) that the store covers: the day starts at or
    after the hour of the store's earliest order."""
    if earliest is None:
        return []
    today = end.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_hour = earliest.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    days = [today - (DEMAND_DAYS - i) * DAY for i in range(DEMAND_DAYS)]
    return [day for day in days if day >= first_hour]


def raw_order_sums(db: Database, archive: ArchiveStore | None, covered_from: dt.datetime | None):
    """How a KPI run sums a range the history layer does not store (the hour in progress, a window's edges): from
    the minute rollup when it covers the range and no archive file holds part of it (the live hour at 100× is
    millions of orders), else from the raw events of both stores."""
    raw = history_read.raw_order_sums(db, archive)
    done: dict[tuple, list[dict]] = {}  # the demand and history:daily read the same hour in progress: sum it once

    def sums(lo: dt.datetime, hi: dt.datetime) -> list[dict]:
        if (lo, hi) not in done:
            archived = archive is not None and any(history_cold.hour_files(archive, "orders_fact", hour)
                                                   for hour in hours_touching(lo, hi))
            if covered_from is None or lo < covered_from or archived:
                done[(lo, hi)] = raw(lo, hi)
            else:
                done[(lo, hi)] = list(db[rollup.ROLLUP].aggregate(rollup.window_pipeline(lo, hi)))
        return [dict(row) for row in done[(lo, hi)]]

    return sums




def history_inputs(db: Database, archive: ArchiveStore | None, end: dt.datetime, wanted: set[str], *,
                   now: dt.datetime, supplier_window_days: int,
                   covered_from: dt.datetime | None = None,
                   ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES) -> tuple[dict[str, pa.Table], dict]:
    """The history-window inputs at E = ``end``: bring the history layer up to date, then read it."""
    raw = raw_order_sums(db, archive, covered_from)
    report = {"refresh": maintain.refresh(db, archive, now=now, rollup_from=covered_from),
              "rollup_covered_from": covered_from, "raw_order_sums": raw}
    tables: dict[str, pa.Table] = {}
    earliest = maintain.earliest_order(db, maintain.history_database(db), archive)
    report["earliest_order"] = iso(earliest) if earliest else None
    report["demand_history_days"] = demand_history_days(earliest, end)
    if "demand" in wanted:
        rows = history_read.pair_requested_units(db, archive, end - DEMAND_DAYS * DAY, end, raw)
        tables["demand"] = pa.Table.from_pylist(rows, schema=_HISTORY_SCHEMAS["demand"])
    days = covered_days(earliest, end)
    if "covered_days" in wanted:
        tables["covered_days"] = pa.Table.from_pylist([{"day": f"{d:%Y-%m-%d}"} for d in days],
                                                      schema=_HISTORY_SCHEMAS["covered_days"])
    if "daily_demand" in wanted:
        rows = history_read.daily_pair_sums(db, archive, days[0], days[-1] + DAY, raw) if days else []
        tables["daily_demand"] = pa.Table.from_pylist(
            [{k: r[k] for k in ("day", "sku_id", "dc_id", "units_requested")} for r in rows],
            schema=_HISTORY_SCHEMAS["daily_demand"])
    if "forecast" in wanted or "forecast_pairs" in wanted:
        tables.update(decision_inputs.forecast_tables(db, archive, end, raw, earliest, ramadan))
    if "shipments" in wanted:
        start = end - supplier_window_days * DAY
        rows = history_shipments.window_rows(maintain.history_database(db), start, end)
        tables["shipments"] = pa.Table.from_pylist(
            [{"supplier_id": r["supplier_id"], "sku_id": r["sku_id"], "dc_id": r["dc_id"], "quantity": r["quantity"],
              "planned_lead_time_days": r["planned_lead_time_days"], "shipment_ms": _ms(r["shipment_ts"]),
              "expected_ms": _ms(r["expected_arrival_ts"]),
              "actual_ms": _ms(r["actual_arrival_ts"]) if r["actual_arrival_ts"] else None} for r in rows],
            schema=_HISTORY_SCHEMAS["shipments"])
        report["shipments_read"] = len(rows)
    return tables, report


def _ms(moment: dt.datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def _label(key: tuple[str, int]) -> str:
    name, minutes = key
    return f"{name}/{minutes}m" if minutes else name


def _evaluate(spark, specs: list[KpiSpec], tables: dict[tuple[str, int], pa.Table],
              extra_params: dict) -> dict[str, list[dict]]:
    """All requested KPIs as ONE Spark action: the queries are tiny, so their cost is per-action overhead (analysis,
    job and stage scheduling, round trips). Each query's rows become JSON strings tagged with the KPI name, the
    results are a UNION ALL, and one shuffle partition (without adaptive re-planning) is enough for a few dozen rows."""
    frames = {_frame_name(key): spark.createDataFrame(table, schema=_spark_schema(table.schema))
              for key, table in tables.items()}
    parts, args = [], {}
    for spec in specs:
        text = spec.sql
        for name in spec.inputs:
            text = text.replace(f"{{{name}}}", f"{{{_frame_name(_query_key(spec, name))}}}")
        params = {"window_minutes": spec.window_minutes, **extra_params}
        for key, value in params.items():
            if f":{key}" in text:
                unique = f"{key}_{spec.name}"  # parameters differ per KPI (window) inside the one statement
                text = text.replace(f":{key}", f":{unique}")
                args[unique] = value
        parts.append(f"SELECT '{spec.name}' AS kpi, to_json(struct(*), map('ignoreNullFields', 'false')) AS row "
                     f"FROM ({text}) AS {spec.name}_rows")
    # Adaptive execution re-plans after each stage to resize partitions: nothing to resize in one partition of a
    # few dozen rows, and it cost 0.2–0.4 s of every tick (measured on a warm Connect server).
    with _session_conf(spark, {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}):
        table = spark.sql("\nUNION ALL\n".join(parts), args=args, **frames).toArrow()
    rows: dict[str, list[dict]] = {spec.name: [] for spec in specs}
    for kpi, row in zip(table.column("kpi").to_pylist(), table.column("row").to_pylist()):
        rows[kpi].append(json.loads(row))
    return rows


def _frame_name(key: tuple[str, int]) -> str:
    return _label(key).replace("/", "_")


class _session_conf:
    """Set session options for one query and put the previous values back (the session may be shared)."""

    def __init__(self, spark, options: dict[str, str]):
        self.spark, self.options, self.previous = spark, options, {}

    def __enter__(self):
        for key, value in self.options.items():
            self.previous[key] = self.spark.conf.get(key, None)
            self.spark.conf.set(key, value)

    def __exit__(self, *exc):
        for key, value in self.previous.items():
            if value is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, value)
        return False


def _query_key(spec: KpiSpec, name: str) -> tuple[str, int]:
    """Inputs shared by KPIs with the same window (or dimensions) are read from MongoDB once."""
    build = _INPUTS[name][1]
    return name, spec.window_minutes if build is not None and build is not HISTORY else 0


def _query(key: tuple[str, int], as_of: dt.datetime, use_rollup: bool) -> pushdown.Pushdown:
    name, minutes = key
    collection, build = _INPUTS[name]
    if build is None:
        return pushdown.dimension(collection)
    if name == "orders" and use_rollup:
        build = rollup.orders_in_window
    return build(as_of - dt.timedelta(minutes=minutes), as_of)


def _timed_from_both(db: Database, archive: ArchiveStore, key: tuple[str, int], end: dt.datetime,
                     query: pushdown.Pushdown) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    name, minutes = key
    table = _FROM_BOTH[name](db, archive, end - dt.timedelta(minutes=minutes), end)
    return table.select(list(query.schema)).cast(pa.schema(list(query.schema.items()))), time.perf_counter() - started


def _timed_aggregate(db: Database, query: pushdown.Pushdown) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    table = aggregate_arrow_all(db[query.collection], query.pipeline, schema=Schema(query.schema))
    # pymongoarrow may order columns as documents come back; the schema's order keeps SQL inputs stable.
    return table.select(list(query.schema)), time.perf_counter() - started


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _clean(row: dict) -> dict:
    """JSON-safe values: NaN/inf (impossible from the formulas, but never emitted) become null; epoch-millisecond
    times (``sql.TIMESTAMP_FIELDS``) become ISO 8601 UTC."""
    clean = {key: None if isinstance(value, float) and not math.isfinite(value) else value
             for key, value in row.items()}
    for key in sql.TIMESTAMP_FIELDS:
        if clean.get(key) is not None:
            clean[key] = iso(dt.datetime.fromtimestamp(clean[key] / 1000, dt.UTC))
    return clean


def headline_numbers(results: dict[str, KpiResult]) -> dict[str, float | int | None]:
    """The run's headline figures (the dashboard cards and the `kpi:history` stream); None when not computed or
    without a denominator. Supplier averages are weighted by shipments received (= over all receipts)."""
    numbers: dict[str, float | int | None] = dict.fromkeys(HEADLINE_FIELDS)
    if "inventory_level" in results:
        numbers["total_on_hand"] = sum(row["on_hand_qty"] for row in results["inventory_level"].rows)
    if "stockout_risk" in results:
        numbers["stockout_alerts"] = alert_count(results["stockout_risk"].rows)
    if "supplier_performance" in results:
        rows = [row for row in results["supplier_performance"].rows if row["shipments_received"]]
        received = sum(row["shipments_received"] for row in rows)
        if received:
            numbers["avg_on_time_rate"] = sum(r["on_time_rate"] * r["shipments_received"] for r in rows) / received
            numbers["avg_actual_lead_time_days"] = (
                sum(r["avg_actual_lead_time_days"] * r["shipments_received"] for r in rows) / received
            )
    if "dc_utilization" in results:
        values = [row["utilization"] for row in results["dc_utilization"].rows if row["utilization"] is not None]
        numbers["avg_utilization"] = sum(values) / len(values) if values else None
    if "regional_fulfillment" in results:
        rows = results["regional_fulfillment"].rows
        numbers["revenue"] = sum(row["revenue"] for row in rows)
        requested = sum(row["units_requested"] for row in rows)
        numbers["fill_rate"] = sum(row["units_fulfilled"] for row in rows) / requested if requested else None
    return numbers
