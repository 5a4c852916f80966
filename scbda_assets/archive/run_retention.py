"""Days-long operation stays bounded: finished Dagster runs of the minute stages, with their event logs, are deleted
after RUN_RETENTION_DAYS (Dagster 1.13's ``retention`` setting covers schedule and sensor ticks only; run purging
is an open request upstream, dagster-io/dagster#4100, #33785).

Only the high-frequency stages are purged — generator and KPI runs (1 440 a day each) and quality checks. Archive and
history runs are kept: their events are what the UI shows as the partitions' materialization status.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.contract.stages import GENERATOR, KPIS, QUALITY, stage_tags

PURGED_STAGES = (GENERATOR, KPIS, QUALITY)
RUN_RETENTION_DAYS = 3
PURGE_BATCH = 500  # runs deleted per evaluation: bounded work per tick, the backlog shrinks tick by tick
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def purge_old_runs(instance: dg.DagsterInstance, *, now: dt.datetime, days: float = RUN_RETENTION_DAYS,
                   limit: int = PURGE_BATCH) -> dict[str, int]:
    """Delete finished runs of PURGED_STAGES created before ``now - days`` (at most ``limit``); per stage counts."""
    before = now - dt.timedelta(days=days)
    deleted: dict[str, int] = {}
    budget = limit
    for stage in PURGED_STAGES:
        if budget <= 0:
            break
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, tags=stage_tags(stage), created_before=before),
            limit=budget, ascending=True,
        )
        for record in records:
            instance.delete_run(record.dagster_run.run_id)
        deleted[stage] = len(records)
        budget -= len(records)
    return deleted


@dg.sensor(
    name="dagster_run_retention_sensor",
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Deletes finished generator, KPI and quality runs (and their event logs) older than "
    f"{RUN_RETENTION_DAYS} days, {PURGE_BATCH} per evaluation, so the Dagster storage stays bounded.",
)
def dagster_run_retention_sensor(context: dg.SensorEvaluationContext):
    deleted = purge_old_runs(context.instance, now=dt.datetime.now(dt.UTC))
    return dg.SkipReason(f"deleted {sum(deleted.values())} finished run(s) older than {RUN_RETENTION_DAYS} days: "
                         + ", ".join(f"{stage} {count}" for stage, count in deleted.items()))
