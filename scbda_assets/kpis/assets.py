"""The five KPI assets: one subsettable multi-asset over one Spark session (thin wiring over ``refresh.py``)."""

import datetime as dt

import dagster as dg
from pydantic import Field

from scbda_assets.contract import HEADLINE_OF, KPI_NAMES
from scbda_assets.kpis.compute import KPIS, alert_count
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.kpis.refresh import (
    RefreshOutcome,
    decision_settings,
    SparkHandle,
    is_past,
    open_spark,
    parse_as_of,
    run_refresh,
    wait_for_data,
    wall_clock,
)
from scbda_assets.failures import service_failures
from scbda_assets.settings import ConfigError
from scbda_assets.resources import MongoResource, RedisResource, SettingsResource, SparkResource

ASSET_KEYS: dict[str, dg.AssetKey] = {name: dg.AssetKey(f"kpi_{name}") for name in KPI_NAMES}
OP_NAME = "kpis"
PREVIEW_ROWS = 10

_DESCRIPTIONS = {
    "inventory_level": "Per (SKU, DC) with a snapshot in the window: latest on-hand, window average, safety stock.",
    "stockout_risk": "Per (SKU, DC): P(stockout before the next receipt), forecast + count law; critical >= 50 %.",
    "supplier_performance": "Per supplier (all): shipments created and received, planned vs actual lead time, on-time.",
    "dc_utilization": "Per DC (all): volume of the latest stock over capacity; high > 0.85, critical >= 0.90.",
    "regional_fulfillment": "Per region (all, by the DC's region): orders, units, fill rate, revenue, lost revenue.",
}


class KpiRunConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="As-of time T, ISO 8601 (no offset = UTC). Default: now. The schedule passes its tick.",
    )
    live: bool | None = Field(
        default=None,
        description="Write the live kpi:* keys (default: yes). Never for an as_of more than 5 minutes in the past, "
        "even with true (a past as-of records its payloads in the materialization metadata instead), and only if "
        "as_of is newer than the live snapshot's (SPEC §10). A future as_of is refused. The schedule passes true.",
    )


@dg.multi_asset(
    name=OP_NAME,
    specs=[
        dg.AssetSpec(
            ASSET_KEYS[name],
            group_name="kpis",
            deps=[dg.AssetKey(collection) for collection in KPIS[name].collections],
            description=f"{_DESCRIPTIONS[name]} Window {KPIS[name].window_minutes} min; Redis key kpi:{name}.",
            kinds={"spark", "redis"},
            skippable=True,
        )
        for name in KPI_NAMES
    ],
    can_subset=True,
)
def kpis(
    context: dg.AssetExecutionContext,
    config: KpiRunConfig,
    mongo: MongoResource,
    redis: RedisResource,
    pyspark: SparkResource,
    settings: SettingsResource,
):
    """Compute the selected KPIs in one Spark session and write them to Redis in one transaction."""
    names = tuple(name for name in KPI_NAMES if ASSET_KEYS[name] in context.selected_asset_keys)
    now = wall_clock()
    try:
        as_of = parse_as_of(config.as_of, now=now)
    except ConfigError as refused:  # a future or unreadable as-of: one line, nothing computed
        raise dg.Failure(description=str(refused)) from None
    past = is_past(as_of, now)
    live = config.live is not False and not past  # the live snapshot only moves forward: never a past as-of
    if config.live and past:
        context.log.warning(f"live: true ignored: as-of {as_of.isoformat()} is in the past; the live kpi:* keys "
                            f"are left as they are (payloads in the metadata)")
    with service_failures():
        outcome = _refresh(as_of, live, names, mongo=mongo, redis=redis, pyspark=pyspark, settings=settings.get())
    where = "Redis" if outcome.published else f"metadata only ({outcome.not_published})"
    context.log.info(f"KPIs {', '.join(names)} as of {as_of.isoformat()} in {outcome.seconds:.2f} s -> {where}")
    for name in names:
        yield dg.MaterializeResult(asset_key=ASSET_KEYS[name], metadata=materialization_metadata(name, outcome))


def _refresh(as_of: dt.datetime, live: bool, names: tuple[str, ...], *, mongo: MongoResource, redis: RedisResource,
             pyspark: SparkResource, settings) -> RefreshOutcome:
    db = mongo.database()
    # A live run never reads a minute the generator is still writing: wait (bounded) for its clock to reach T.
    data_until = wait_for_data(db, as_of) if live else None
    handle = SparkHandle(lambda: open_spark(pyspark.spark_config, lambda: pyspark.spark_session))
    try:
        return run_refresh(
            db=db,
            spark=handle,
            redis_client=redis.client(),
            as_of=as_of,
            ttl_seconds=settings.kpi_ttl_seconds,
            names=names,
            key=redis.key,
            clock=wall_clock,
            archive=ArchiveStore(settings.archive_uri),
            data_until=data_until,
            supplier_window_days=settings.supplier_window_days,
            publish=live,
            decision_settings=decision_settings(settings),
        )
    finally:
        if handle.reopened:
            handle.close()


def materialization_metadata(name: str, outcome: RefreshOutcome) -> dict:
    result = outcome.run.results[name]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(result.rows)),
        "as_of": dg.MetadataValue.timestamp(result.as_of),
        "data_until": dg.MetadataValue.timestamp(result.data_until or result.as_of),
        "published": dg.MetadataValue.bool(outcome.published),
        "window_minutes": dg.MetadataValue.int(result.window_minutes),
        "compute_seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
        "mongo_seconds": dg.MetadataValue.float(round(outcome.run.mongo_seconds, 3)),
        "spark_seconds": dg.MetadataValue.float(round(outcome.run.spark_seconds, 3)),
        "orders_from": dg.MetadataValue.text(outcome.run.orders_from),
        "redis_key": dg.MetadataValue.text(f"kpi:{name}" if outcome.published
                                           else f"(not written: {outcome.not_published})"),
        "preview": dg.MetadataValue.md(markdown_table(result.rows[:PREVIEW_ROWS], total=len(result.rows))),
    }
    if name == "stockout_risk":
        metadata["alert_count"] = dg.MetadataValue.int(alert_count(result.rows))
    if result.history_days is not None:
        metadata["history_days"] = dg.MetadataValue.float(float(result.history_days))
    if not outcome.published:  # a past as-of, or a newer one is live: the payload lives here
        metadata["payload"] = dg.MetadataValue.json(result.payload())
    headline = HEADLINE_OF[name]
    value = outcome.headline.get(headline)
    if value is not None:  # a null headline (no denominator) is left out rather than plotted as 0
        metadata[headline] = dg.MetadataValue.float(float(value))
    return metadata


def markdown_table(rows: list[dict], *, total: int) -> str:
    if not rows:
        return "_no rows in the window_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[column]) for column in columns) + " |")
    if total > len(rows):
        lines.append(f"\n_{len(rows)} of {total} rows_")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")
