"""Compute KPIs: run the MongoDB pushdown pipelines into Arrow, then the Spark SQL formulas (no Dagster here).

``compute_kpis(db, spark, as_of, names)`` reads only what the requested KPIs need, in parallel threads (MongoDB
serves them concurrently; order sums come from the minute rollup, ``rollup.py``), evaluates every requested KPI
in one Spark action, and returns JSON-ready rows per KPI plus the headline numbers of the run.
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

from scbda_assets.kpis import pushdown, rollup, sql


@dataclasses.dataclass(frozen=True)
class KpiSpec:
    name: str
    window_minutes: int
    sql: str
    inputs: tuple[str, ...]  # input frames the SQL binds (keys of ``_INPUTS``)

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
}

KPIS: dict[str, KpiSpec] = {
    spec.name: spec
    for spec in (
        KpiSpec("inventory_level", 15, sql.INVENTORY_LEVEL, ("inventory", "skus", "dcs")),
        KpiSpec("stockout_risk", 15, sql.STOCKOUT_RISK, ("inventory", "orders", "skus", "dcs")),
        KpiSpec("supplier_performance", 30, sql.SUPPLIER_PERFORMANCE, ("created", "received", "suppliers")),
        KpiSpec("dc_utilization", 15, sql.DC_UTILIZATION, ("inventory", "skus", "dcs")),
        KpiSpec("regional_fulfillment", 15, sql.REGIONAL_FULFILLMENT, ("orders", "regions", "dcs", "skus")),
    )
}
KPI_NAMES: tuple[str, ...] = tuple(KPIS)


@dataclasses.dataclass(frozen=True)
class KpiResult:
    name: str
    as_of: dt.datetime
    window_minutes: int
    rows: list[dict]

    def payload(self) -> dict:
        """The Redis value (SPEC §10)."""
        body = {"as_of": iso(self.as_of), "window_minutes": self.window_minutes, "rows": self.rows}
        if self.name == "stockout_risk":
            body["alert_count"] = alert_count(self.rows)
        return body


@dataclasses.dataclass(frozen=True)
class KpiRun:
    as_of: dt.datetime
    results: dict[str, KpiResult]
    input_rows: dict[str, int]  # pre-aggregated rows read per input frame
    mongo_seconds: float
    spark_seconds: float
    orders_from: str = "facts"  # where the order sums came from: "rollup" or "facts"
    input_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per MongoDB query (and the fold)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def alert_count(stockout_rows: list[dict]) -> int:
    return sum(1 for row in stockout_rows if row["severity"] != "ok")


def compute_kpis(
    db: Database, spark, as_of: dt.datetime, names: tuple[str, ...] = KPI_NAMES, *, now: dt.datetime,
    orders_from: str = "rollup",
) -> KpiRun:
    """The requested KPIs at as-of time ``as_of`` (tz-aware), in one Spark session.

    ``orders_from="rollup"`` (default) reads order sums from the minute rollup when it covers the window (folding in
    new orders first), ``"facts"`` always aggregates ``orders_fact`` directly (the reference, and the benchmark's
    comparison). ``now`` is the wall time (the rollup seals ingest minutes by it); a fixed-date caller passes T."""
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

    started = time.perf_counter()
    keys = {_query_key(spec, name) for spec in specs for name in spec.inputs}
    seconds: dict[str, float] = {}
    use_rollup = False
    if orders_from == "rollup" and any(name == "orders" for name, _ in keys):
        folded = rollup.fold_new_orders(db, now=now)
        seconds["orders_rollup_fold"] = time.perf_counter() - started
        windows = [minutes for name, minutes in keys if name == "orders"]
        use_rollup = all(rollup.covers(folded, as_of - dt.timedelta(minutes=m)) for m in windows)
    queries = {key: _query(key, as_of, use_rollup) for key in keys}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_timed_aggregate, db, query) for key, query in queries.items()}
        tables = {}
        for key, future in futures.items():
            tables[key], seconds[_label(key)] = future.result()
    mongo_seconds = time.perf_counter() - started

    started = time.perf_counter()
    rows = _evaluate(spark, specs, tables)
    results = {spec.name: KpiResult(spec.name, as_of, spec.window_minutes,
                                    sorted((_clean(row) for row in rows[spec.name]), key=sql.ROW_ORDER[spec.name]))
               for spec in specs}
    spark_seconds = time.perf_counter() - started
    input_rows = {_label(key): table.num_rows for key, table in tables.items()}
    return KpiRun(as_of, results, input_rows, mongo_seconds, spark_seconds,
                  orders_from="rollup" if use_rollup else "facts",
                  input_seconds={label: round(value, 4) for label, value in seconds.items()})


def _label(key: tuple[str, int]) -> str:
    name, minutes = key
    return f"{name}/{minutes}m" if minutes else name


def _evaluate(spark, specs: list[KpiSpec], tables: dict[tuple[str, int], pa.Table]) -> dict[str, list[dict]]:
    """All requested KPIs as ONE Spark action: the queries are tiny, so their cost is per-action overhead (analysis,
    job and stage scheduling, round trips). Each query's rows become JSON strings tagged with the KPI name, the
    results are a UNION ALL, and one shuffle partition is enough for a few dozen rows."""
    frames = {_frame_name(key): spark.createDataFrame(table, schema=_spark_schema(table.schema))
              for key, table in tables.items()}
    parts, args = [], {}
    for spec in specs:
        text = spec.sql
        for name in spec.inputs:
            text = text.replace(f"{{{name}}}", f"{{{_frame_name(_query_key(spec, name))}}}")
        params = {"window_minutes": spec.window_minutes, **sql.THRESHOLDS}
        for key, value in params.items():
            if f":{key}" in text:
                unique = f"{key}_{spec.name}"  # parameters differ per KPI (window) inside the one statement
                text = text.replace(f":{key}", f":{unique}")
                args[unique] = value
        parts.append(f"SELECT '{spec.name}' AS kpi, to_json(struct(*), map('ignoreNullFields', 'false')) AS row "
                     f"FROM ({text}) AS {spec.name}_rows")
    with _session_conf(spark, {"spark.sql.shuffle.partitions": "1"}):
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
    return name, spec.window_minutes if _INPUTS[name][1] else 0


def _query(key: tuple[str, int], as_of: dt.datetime, use_rollup: bool) -> pushdown.Pushdown:
    name, minutes = key
    collection, build = _INPUTS[name]
    if build is None:
        return pushdown.dimension(collection)
    if name == "orders" and use_rollup:
        build = rollup.orders_in_window
    return build(as_of - dt.timedelta(minutes=minutes), as_of)


def _timed_aggregate(db: Database, query: pushdown.Pushdown) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    table = aggregate_arrow_all(db[query.collection], query.pipeline, schema=Schema(query.schema))
    # pymongoarrow may order columns as documents come back; the schema's order keeps SQL inputs stable.
    return table.select(list(query.schema)), time.perf_counter() - started


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _clean(row: dict) -> dict:
    """JSON-safe values: NaN/inf (impossible from the formulas, but never emitted) become null."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}


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


HEADLINE_FIELDS = (
    "total_on_hand",
    "stockout_alerts",
    "avg_on_time_rate",
    "avg_actual_lead_time_days",
    "avg_utilization",
    "revenue",
    "fill_rate",
)

# The headline metric of each KPI (Dagster plots it over materializations).
HEADLINE_OF = {
    "inventory_level": "total_on_hand",
    "stockout_risk": "stockout_alerts",
    "supplier_performance": "avg_on_time_rate",
    "dc_utilization": "avg_utilization",
    "regional_fulfillment": "revenue",
}
