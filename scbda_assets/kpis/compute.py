"""Compute KPIs: run the MongoDB pushdown pipelines into Arrow, then the Spark SQL formulas (no Dagster here).

``compute_kpis(db, spark, as_of, names)`` reads only what the requested KPIs need, in parallel threads (MongoDB
serves them concurrently), and returns JSON-ready rows per KPI plus the headline numbers of the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from pymongo.database import Database
from pymongoarrow.api import Schema, aggregate_arrow_all

from scbda_assets.kpis import pushdown, sql


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


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def alert_count(stockout_rows: list[dict]) -> int:
    return sum(1 for row in stockout_rows if row["severity"] != "ok")


def compute_kpis(db: Database, spark, as_of: dt.datetime, names: tuple[str, ...] = KPI_NAMES) -> KpiRun:
    """The requested KPIs at as-of time ``as_of`` (tz-aware), in one Spark session."""
    unknown = sorted(set(names) - set(KPIS))
    if unknown:
        raise ValueError(f"unknown KPI {unknown[0]!r}: expected one of {', '.join(KPI_NAMES)}")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    specs = [KPIS[name] for name in KPI_NAMES if name in names]
    if not specs:
        raise ValueError(f"no KPI requested: expected some of {', '.join(KPI_NAMES)}")

    started = time.perf_counter()
    queries = {_query_key(spec, name): _query(spec, name, as_of) for spec in specs for name in spec.inputs}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_aggregate, db, query) for key, query in queries.items()}
        tables = {key: future.result() for key, future in futures.items()}
    mongo_seconds = time.perf_counter() - started

    started = time.perf_counter()
    frames = {key: spark.createDataFrame(table, schema=_spark_schema(table.schema)) for key, table in tables.items()}

    def evaluate(spec: KpiSpec) -> KpiResult:
        args = {"window_minutes": spec.window_minutes, **sql.THRESHOLDS}
        used = {key: value for key, value in args.items() if f":{key}" in spec.sql}
        bound = {name: frames[_query_key(spec, name)] for name in spec.inputs}
        rows = spark.sql(spec.sql, args=used, **bound).toArrow().to_pylist()
        return KpiResult(spec.name, as_of, spec.window_minutes, [_clean(row) for row in rows])

    # The queries are tiny: their cost is round trips and job scheduling, which overlap well from threads.
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        results = {result.name: result for result in pool.map(evaluate, specs)}
    spark_seconds = time.perf_counter() - started
    input_rows = {
        f"{name}/{minutes}m" if minutes else name: table.num_rows for (name, minutes), table in tables.items()
    }
    return KpiRun(as_of, results, input_rows, mongo_seconds, spark_seconds)


def _query_key(spec: KpiSpec, name: str) -> tuple[str, int]:
    """Inputs shared by KPIs with the same window (or dimensions) are read from MongoDB once."""
    return name, spec.window_minutes if _INPUTS[name][1] else 0


def _query(spec: KpiSpec, name: str, as_of: dt.datetime) -> pushdown.Pushdown:
    collection, build = _INPUTS[name]
    if build is None:
        return pushdown.dimension(collection)
    return build(as_of - dt.timedelta(minutes=spec.window_minutes), as_of)


def _aggregate(db: Database, query: pushdown.Pushdown) -> pa.Table:
    table = aggregate_arrow_all(db[query.collection], query.pipeline, schema=Schema(query.schema))
    # pymongoarrow may order columns as documents come back; the schema's order keeps SQL inputs stable.
    return table.select(list(query.schema))


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
