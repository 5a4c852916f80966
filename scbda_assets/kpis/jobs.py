"""`kpi_job` and its minute schedule: as-of time = the tick; a tick is skipped while a KPI run is queued or running."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.contract.stages import KPIS, stage_tags
from scbda_assets.kpis.assets import ASSET_KEYS, OP_NAME, KpiRunConfig

KPI_TAGS = stage_tags(KPIS)
AS_OF_TAG = "scbda/as_of"

# Runs in these states would make a new run wait in the queue (the instance limits the stage to 1 run).
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

kpi_job = dg.define_asset_job(
    "kpi_job",
    selection=dg.AssetSelection.assets(*ASSET_KEYS.values()),
    tags=KPI_TAGS,
    description="The five KPIs at one as-of time, written to Redis in one transaction.",
)


def kpi_run_config(as_of: dt.datetime) -> dg.RunConfig:
    """A tick is live: it writes the kpi:* keys even if the run starts late."""
    return dg.RunConfig(ops={OP_NAME: KpiRunConfig(as_of=as_of.isoformat(), live=True)})


@dg.schedule(
    name="kpi_schedule",
    job=kpi_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def kpi_schedule(context: dg.ScheduleEvaluationContext):
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(tags=KPI_TAGS, statuses=ACTIVE_STATUSES), limit=1
    )
    if active:
        run = active[0].dagster_run
        return dg.SkipReason(
            f"KPI run {run.run_id} is still {run.status.value}: skipping this tick so runs don't pile up"
        )
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    tick = tick.astimezone(dt.UTC)
    return dg.RunRequest(
        run_key=f"kpis-{tick.isoformat()}",
        run_config=kpi_run_config(tick),
        tags={AS_OF_TAG: tick.isoformat()},
    )
