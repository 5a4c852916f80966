"""Run retention on a real (ephemeral) DagsterInstance: finished minute-stage runs older than the retention are
deleted with their event logs, in bounded batches; archive and history runs, recent runs and runs in progress stay."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.archive.run_retention import PURGED_STAGES, purge_old_runs



def _run(instance, stage: str, status=dg.DagsterRunStatus.SUCCESS) -> str:
    run = instance.add_run(dg.DagsterRun(job_name=f"{stage}_job", status=status, tags={"scbda/stage": stage}))
    instance.report_engine_event("a logged event", run)
    return run.run_id


def test_old_finished_minute_stage_runs_are_purged_with_their_logs():
    with dg.DagsterInstance.ephemeral() as instance:
        purged = [_run(instance, stage) for stage in PURGED_STAGES for _ in range(3)]
        kept = [_run(instance, "archive"), _run(instance, "history"),
                _run(instance, "kpis", dg.DagsterRunStatus.STARTED)]
        # Runs created "now" (the wall clock) are recent for a purge as of NOW ... and old as of 4 days later.
        recent = purge_old_runs(instance, now=dt.datetime.now(dt.UTC))
        assert sum(recent.values()) == 0 and len(instance.get_run_ids()) == len(purged) + len(kept)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)
        first = purge_old_runs(instance, now=later, limit=4)  # bounded per evaluation
        assert sum(first.values()) == 4
        second = purge_old_runs(instance, now=later, limit=100)
        assert sum(second.values()) == len(purged) - 4
        assert set(instance.get_run_ids()) == set(kept)
        assert all(not instance.all_logs(run_id) for run_id in purged)
        assert all(instance.all_logs(run_id) for run_id in kept[:2])
