"""Run retention on a real DagsterInstance (SQLite storage, local compute logs in a temp folder): finished runs past
their stage's retention are deleted with their event logs and their compute-log folders, in bounded batches; the
archive runs the archive sensor still reads (newest failed, newest busy, recoveries of incomplete batches), recent
runs and runs in progress stay."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from scbda_assets.archive.assets import ARCHIVE_TAGS, OUTCOME_TAG
from scbda_assets.archive.jobs import RECOVERS_TAG
from scbda_assets.archive.run_retention import PURGED_STAGES, RETENTION_DAYS, purge_old_runs
from scbda_assets.contract.stages import ARCHIVE, HISTORY

DAY = dt.timedelta(days=1)


def _run(instance, stage: str, status=dg.DagsterRunStatus.SUCCESS, **tags) -> str:
    run = instance.add_run(dg.DagsterRun(job_name=f"{stage}_job", status=status,
                                         tags={"scbda/stage": stage, **tags}))
    instance.report_engine_event("a logged event", run)
    manager = instance.compute_log_manager
    with manager.open_log_stream([run.run_id, "compute_logs", "step"], dg._core.storage.compute_log_manager
                                 .ComputeIOType.STDOUT) as stream:
        stream.write("step output\n")
    return run.run_id


def _log_folders(instance) -> set[str]:
    base = instance.compute_log_manager._base_dir  # noqa: SLF001 (the folder the test counts)
    return {name for name in os.listdir(base) if os.path.isdir(os.path.join(base, name))}


def test_old_finished_runs_are_purged_with_their_event_and_compute_logs(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        purged = [_run(instance, stage) for stage in PURGED_STAGES for _ in range(3)]
        kept = [_run(instance, "kpis", dg.DagsterRunStatus.STARTED)]
        assert _log_folders(instance) == set(purged + kept)  # one compute-log folder per run
        # Runs created "now" (the wall clock) are recent for a purge as of NOW ... and old enough 15 days later.
        assert sum(purge_old_runs(instance, now=dt.datetime.now(dt.UTC)).values()) == 0
        later = dt.datetime.now(dt.UTC) + 15 * DAY
        first = purge_old_runs(instance, now=later, limit=4)  # bounded per evaluation
        assert sum(first.values()) == 4
        second = purge_old_runs(instance, now=later, limit=100)
        assert sum(second.values()) == len(purged) - 4
        assert set(instance.get_run_ids()) == set(kept)
        assert all(not instance.all_logs(run_id) for run_id in purged)
        assert _log_folders(instance) == set(kept)  # the compute logs went with their runs


def test_archive_and_history_runs_have_a_longer_retention(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        minute = _run(instance, "kpis")
        slow = [_run(instance, ARCHIVE), _run(instance, HISTORY)]
        between = dt.datetime.now(dt.UTC) + (RETENTION_DAYS["kpis"] + 1) * DAY
        assert purge_old_runs(instance, now=between) == {stage: int(stage == "kpis") for stage in PURGED_STAGES}
        assert set(instance.get_run_ids()) == set(slow) and minute not in _log_folders(instance)
        purge_old_runs(instance, now=dt.datetime.now(dt.UTC) + (RETENTION_DAYS[ARCHIVE] + 1) * DAY)
        assert instance.get_run_ids() == [] and _log_folders(instance) == set()


def test_archive_runs_the_sensor_reads_are_kept(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        failed = dg.DagsterRunStatus.FAILURE
        plain = _run(instance, ARCHIVE, **ARCHIVE_TAGS)
        old_failed = _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS)
        recovered = _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS, **{RECOVERS_TAG: "B-done"})
        recovering = _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS, **{RECOVERS_TAG: "B-open"})
        newest_busy = _run(instance, ARCHIVE, **ARCHIVE_TAGS, **{OUTCOME_TAG: "busy"})
        newest_failed = _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS)
        later = dt.datetime.now(dt.UTC) + 30 * DAY
        purge_old_runs(instance, now=later, incomplete_batches={"B-open"})
        assert set(instance.get_run_ids()) == {newest_failed, newest_busy, recovering}
        assert {plain, old_failed, recovered}.isdisjoint(_log_folders(instance))
        # The archive root could not be listed: every recovery run is kept.
        again = _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS, **{RECOVERS_TAG: "B-done"})
        _run(instance, ARCHIVE, failed, **ARCHIVE_TAGS)
        purge_old_runs(instance, now=later, incomplete_batches=None)
        assert {recovering, again} <= set(instance.get_run_ids())
