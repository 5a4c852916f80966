"""A year of operation stays bounded (SPEC §8.12): finished Dagster runs are deleted with their event logs AND their
compute logs after a retention per stage (Dagster 1.13's ``retention`` setting covers schedule and sensor ticks only;
run purging is an open request upstream, dagster-io/dagster#4100, #33785; ``delete_run`` leaves the compute-log
folder ``<storage>/<run_id>/`` behind, one per run: ~3,000 a day).

Retention per stage: the minute stages (generator, KPI, quality runs: 1 440 a day each) 3 days; archive and history
runs 14 days — their materializations are what the UI shows as the partitions' status, and they are few. Kept
whatever their age, because the archive sensor reads them (archive/jobs.py):

* the newest failed and the newest busy archive run: the next run key is derived from them (dropping them would
  bring back a key Dagster has seen, and the request would be dropped);
* every run that recovered a batch still incomplete (``scbda/recovers_batch``): the attempt count of its recovery.

The same sensor sweeps the archive's stray temporary files (``archive.leftovers``).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.archive.assets import ARCHIVE_TAGS, OUTCOME_TAG
from scbda_assets.archive.jobs import FAILED, RECOVERS_TAG
from scbda_assets.archive.leftovers import clean_temporary_files
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract.stages import ARCHIVE, GENERATOR, HISTORY, KPIS, QUALITY, stage_tags
from scbda_assets.errors import first_line
from scbda_assets.resources import SettingsResource

RETENTION_DAYS = {GENERATOR: 3, KPIS: 3, QUALITY: 3, ARCHIVE: 14, HISTORY: 14}
PURGED_STAGES = tuple(RETENTION_DAYS)
RUN_RETENTION_DAYS = RETENTION_DAYS[KPIS]  # the minute stages
PURGE_BATCH = 500  # runs deleted per evaluation: bounded work per tick, the backlog shrinks tick by tick
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def delete_run_with_logs(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run, its event log and its compute-log folder (``<base_dir>/<run_id>/``)."""
    instance.delete_run(run_id)
    instance.compute_log_manager.delete_logs(prefix=[run_id])


def archive_runs_kept(instance: dg.DagsterInstance, incomplete_batches: set[str] | None) -> set[str]:
    """Archive runs the sensor's bookkeeping still reads (see the module docstring). ``incomplete_batches`` None
    (the archive root could not be listed): every recovery run is kept."""
    kept = set()
    for filters in (dg.RunsFilter(statuses=FAILED, tags=ARCHIVE_TAGS),
                    dg.RunsFilter(tags={**ARCHIVE_TAGS, OUTCOME_TAG: "busy"})):
        kept |= {record.dagster_run.run_id for record in instance.get_run_records(filters=filters, limit=1)}
    for record in instance.get_run_records(filters=dg.RunsFilter(tags=ARCHIVE_TAGS)):
        batch = record.dagster_run.tags.get(RECOVERS_TAG)
        if batch and (incomplete_batches is None or batch in incomplete_batches):
            kept.add(record.dagster_run.run_id)
    return kept


def purge_old_runs(instance: dg.DagsterInstance, *, now: dt.datetime, days: float | None = None,
                   limit: int = PURGE_BATCH, incomplete_batches: set[str] | None = None) -> dict[str, int]:
    """Delete finished runs of PURGED_STAGES created before ``now`` minus their stage's retention (``days``: one
    retention for all), with their logs, at most ``limit``; per stage counts."""
    deleted: dict[str, int] = {}
    budget = limit
    for stage in PURGED_STAGES:
        if budget <= 0:
            break
        before = now - dt.timedelta(days=RETENTION_DAYS[stage] if days is None else days)
        kept = archive_runs_kept(instance, incomplete_batches) if stage == ARCHIVE else set()
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, tags=stage_tags(stage), created_before=before),
            limit=budget + len(kept), ascending=True,
        )
        doomed = [r.dagster_run.run_id for r in records if r.dagster_run.run_id not in kept][:budget]
        for run_id in doomed:
            delete_run_with_logs(instance, run_id)
        deleted[stage] = len(doomed)
        budget -= len(doomed)
    return deleted


def incomplete_batch_ids(store: ArchiveStore) -> set[str] | None:
    try:
        return {marker.rsplit("/", 1)[-1] for marker in store.list_files(INCOMPLETE_DIR)}
    except OSError:
        return None


@dg.sensor(
    name="dagster_run_retention_sensor",
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Deletes finished runs with their event and compute logs: generator, KPI and quality runs after "
    f"{RUN_RETENTION_DAYS} days, archive and history runs after {RETENTION_DAYS[ARCHIVE]} days (keeping what the "
    f"archive sensor reads), {PURGE_BATCH} per evaluation, so the Dagster storage stays bounded; removes the "
    "archive's stray temporary files (a crash between write and rename) older than 15 minutes.",
)
def dagster_run_retention_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    now = dt.datetime.now(dt.UTC)
    store = ArchiveStore(settings.get().archive_uri)
    deleted = purge_old_runs(context.instance, now=now, incomplete_batches=incomplete_batch_ids(store))
    try:
        cleaned = f"; {clean_temporary_files(store, now=now)} stray temporary archive file(s) removed"
    except OSError as exc:  # the archive's storage not answering is the archive sensor's to report
        cleaned = f"; temporary archive files not swept: {first_line(exc)}"
    return dg.SkipReason(f"deleted {sum(deleted.values())} finished run(s) past their retention: "
                         + ", ".join(f"{stage} {count}" for stage, count in deleted.items()) + cleaned)
