"""regional_daily_history: hot + cold daily history per region, written to Redis for the dashboard's trends."""

import datetime as dt
import time

import dagster as dg

from scbda_assets.archive.partitions import ARCHIVE_PARTITIONS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import REGIONAL_DAILY_KEY as REDIS_KEY
from scbda_assets.contract.stages import HISTORY, stage_tags
from scbda_assets.history import maintain
from scbda_assets.history.regional_daily import DAYS, dumps, regional_daily
from scbda_assets.history.store import history_database
from scbda_assets.history.verify import verify_recent_hours
from scbda_assets.resources import MongoResource, RedisResource, SettingsResource, SparkResource

HISTORY_TAGS = stage_tags(HISTORY)


class HistoryConfig(dg.Config):
    as_of: str = ""  # ISO 8601; empty = now (the schedule passes its tick time)


@dg.asset(
    name="regional_daily_history",
    group_name="history",
    deps=[dg.AssetKey("orders_fact"), dg.AssetKey("orders_archive"), dg.AssetKey("dcs_dim")],
    kinds={"spark", "redis"},
    op_tags=HISTORY_TAGS,
    description=f"Orders, revenue and fill rate per region and business day (last {DAYS} days), reading the Parquet "
    f"archive (partition-pruned) and MongoDB together, de-duplicated by order_id → Redis `{REDIS_KEY}`.",
)
def regional_daily_history(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    mongo: MongoResource,
    redis: RedisResource,
    pyspark: SparkResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    as_of = dt.datetime.fromisoformat(config.as_of.replace("Z", "+00:00")) if config.as_of else dt.datetime.now(dt.UTC)
    started = time.monotonic()
    payload = regional_daily(
        pyspark.spark_session, mongo.database(), ArchiveStore(settings.get().archive_uri), as_of=as_of
    )
    redis.client().set(redis.key(REDIS_KEY), dumps(payload))
    rows = payload["rows"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "as_of": payload["as_of"],
            "orders": sum(r["orders"] for r in rows),
            "revenue_pkr": round(sum(r["revenue"] for r in rows), 2),
            "redis_key": redis.key(REDIS_KEY),
            "duration_s": round(time.monotonic() - started, 3),
            "preview": dg.MetadataValue.md(_preview(rows[-4:])),
        }
    )


def _preview(rows: list[dict]) -> str:
    lines = ["| date | region | orders | revenue (PKR) | fill rate |", "|---|---|---|---|---|"]
    for r in rows:
        fill = "" if r["fill_rate"] is None else f"{r['fill_rate']:.3f}"
        lines.append(f"| {r['date']} | {r['region_id']} | {r['orders']} | {r['revenue']:,.0f} | {fill} |")
    return "\n".join(lines)


history_job = dg.define_asset_job(
    "history_job", selection=[regional_daily_history], tags=HISTORY_TAGS,
    description="Hot + cold daily regional history → Redis.",
)


@dg.schedule(job=history_job, cron_schedule="*/10 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING, name="history_schedule")
def history_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time.astimezone(dt.UTC)
    return dg.RunRequest(
        run_key=f"history-{tick:%Y%m%dT%H%M}",
        run_config={"ops": {"regional_daily_history": {"config": {"as_of": tick.isoformat()}}}},
    )


# --- The history layer (SPEC §9a): hourly-partitioned, backfillable from the UI ---------------------------------

HISTORY_PARTITIONS = ARCHIVE_PARTITIONS  # one partition = one event hour, as the archive's


@dg.multi_asset(
    name="history_hourly",
    specs=[
        dg.AssetSpec(
            "orders_hourly",
            group_name="history",
            deps=[dg.AssetKey("orders_fact"), dg.AssetKey("orders_archive")],
            kinds={"mongodb"},
            description="Orders per (hour, sku, dc): counts and sums (requested, fulfilled, revenue, lost, in full), "
            "built from MongoDB and the Parquet archive together, de-duplicated by order_id. Kept in the "
            "<db>_history database (outside the size the archive sensor measures). Every KPI run refreshes "
            "missing, late and newly archived hours; materialize partitions to rebuild hours on demand.",
        ),
        dg.AssetSpec(
            "shipments_history",
            group_name="history",
            deps=[dg.AssetKey("shipments_fact"), dg.AssetKey("shipments_archive")],
            kinds={"mongodb"},
            description="Purchase orders (one row per shipment_id, ~18 a day), hot ∪ cold, for the supplier sums "
            "and in-transit state of any window. Partition = shipments created in that hour.",
        ),
    ],
    partitions_def=HISTORY_PARTITIONS,
    op_tags=HISTORY_TAGS,
)
def history_hourly(context: dg.AssetExecutionContext, mongo: MongoResource, settings: SettingsResource):
    """Rebuild the selected hours from the raw events of both stores."""
    db = mongo.database()
    archive = ArchiveStore(settings.get().archive_uri)
    window = context.partition_time_window
    hour, totals = window.start.astimezone(dt.UTC), {"orders": 0, "shipments_from_mongodb": 0,
                                                     "shipments_from_archive": 0, "hours": 0}
    started = time.monotonic()
    while hour < window.end:
        report = maintain.rebuild_hour(db, archive, hour, now=dt.datetime.now(dt.UTC))
        for key in ("orders", "shipments_from_mongodb", "shipments_from_archive"):
            totals[key] += report[key]
        totals["hours"] += 1
        hour += dt.timedelta(hours=1)
    seconds = round(time.monotonic() - started, 3)
    yield dg.MaterializeResult(asset_key="orders_hourly", metadata={
        "dagster/row_count": totals["orders"], "hours": totals["hours"], "duration_s": seconds,
        "database": history_database(db).name})
    yield dg.MaterializeResult(asset_key="shipments_history", metadata={
        "dagster/row_count": totals["shipments_from_mongodb"] + totals["shipments_from_archive"],
        "from_mongodb": totals["shipments_from_mongodb"], "from_archive": totals["shipments_from_archive"]})


@dg.asset_check(asset="orders_hourly", name="orders_hourly_match_raw_events",
                description="The stored sums of the last complete hours equal a recomputation from the raw events "
                "of both stores (hot ∪ cold, de-duplicated).")
def orders_hourly_match_raw_events(mongo: MongoResource, settings: SettingsResource) -> dg.AssetCheckResult:
    db = mongo.database()
    report = verify_recent_hours(db, ArchiveStore(settings.get().archive_uri), now=dt.datetime.now(dt.UTC))
    return dg.AssetCheckResult(passed=not report["mismatched"], metadata={
        "hours_checked": report["checked"], "mismatched_hours": ", ".join(report["mismatched"]) or "none"})
