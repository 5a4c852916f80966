"""A run worker SIGKILLed mid-archive no longer blocks the archive stage (a real DagsterInstance on disk with the
embedded instance's dagster.yaml, the run executed by a separate process): the sensor sees the run still STARTED
without an archive-lease heartbeat on two ticks, marks it failed, requests recovery of its batch (a new run key per
failed attempt), and the recovery leaves every id in one place."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout
from scbda_assets.archive import jobs as sensor_module
from scbda_assets.archive.assets import ARCHIVE_TAGS
from scbda_assets.archive.definitions import defs as archive_defs
from scbda_assets.archive.lease import current_holder
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.jobs import RECOVERS_TAG, archive_size_sensor
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.resources import MongoResource, SettingsResource, build_resources
from scbda_assets.settings import Settings
from scbda_assets.timeutil import HOUR, floor_hour
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import assert_each_once

# Writers run as real subprocesses that read the wall clock: under --shift-clock-days this module keeps the real one.
pytestmark = pytest.mark.subprocess_clock

EMBEDDED_INSTANCE = Path(sensor_module.__file__).parents[1] / "dagster_instance.yaml"

# A run worker: executes an archive run in the shared instance and stalls after Spark wrote the batch's files.
RUN_WORKER = textwrap.dedent("""
    import json, sys, time
    import dagster as dg
    from scbda_assets.archive import staging
    from scbda_assets.archive.definitions import defs
    from scbda_assets.resources import build_resources
    from scbda_assets.settings import Settings
    write = staging.spark_write
    def stalled_write(*args, **kwargs):
        write(*args, **kwargs)
        time.sleep(600)
    staging.spark_write = stalled_write
    with dg.DagsterInstance.get() as instance:
        dg.materialize(defs.assets, resources=build_resources(Settings.from_env()), instance=instance,
                       tags=json.loads(sys.argv[1]))
""")


@pytest.mark.slow
def test_killed_run_worker_is_failed_by_the_sensor_and_its_batch_recovered(test_env, spark_server, mongo_db, spark,
                                                                           tmp_path, monkeypatch):
    monkeypatch.setenv("SCBDA_ARCHIVE_LEASE_SECONDS", "3")
    monkeypatch.setenv("SCBDA_ARCHIVE_LEASE_WAIT_SECONDS", "0")
    monkeypatch.setattr(sensor_module, "STARTUP_GRACE_S", 0.0)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(EMBEDDED_INSTANCE, home / "dagster.yaml")
    now = dt.datetime.now(dt.UTC)
    start = floor_hour(now) - dt.timedelta(hours=4)
    docs = {"orders_fact": documents.orders(start, now, 800, seed=81)}
    documents.insert_all(mongo_db, docs)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env,
           "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_LEASE_SECONDS": "3",
           "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "0", "DAGSTER_HOME": str(home)}
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("SCBDA_")})
    store = ArchiveStore(settings.archive_uri)
    tags = {**ARCHIVE_TAGS, ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(start),
            ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(start + HOUR)}
    worker = subprocess.Popen([sys.executable, "-c", RUN_WORKER, json.dumps(tags)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not store.list_files("orders_fact", recursive=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.list_files(INCOMPLETE_DIR), "the run worker is inside its batch"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert "dagster run" in current_holder(mongo_db).owner

    resources = {"mongo": MongoResource(uri=settings.mongo_uri, database_name=settings.mongo_db),
                 "settings": SettingsResource.from_settings(settings)}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags=ARCHIVE_TAGS))
        assert run.status == dg.DagsterRunStatus.STARTED  # nothing in Dagster noticed the dead worker
        time.sleep(3.5)  # its lease expires without a heartbeat

        def tick(cursor=None):
            with dg.build_sensor_context(resources=resources, instance=instance, cursor=cursor) as context:
                return archive_size_sensor(context), context.cursor

        first, cursor = tick()
        assert isinstance(first, dg.SkipReason) and "in progress" in first.skip_message
        assert json.loads(cursor)["suspects"] == [run.run_id]
        second, cursor = tick(cursor)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert isinstance(second, dg.RunRequest), second  # the stage proceeds: the batch is recovered
        batch_id = store.list_files(INCOMPLETE_DIR)[0].rsplit("/", 1)[-1]
        assert second.run_key == f"recover-{batch_id}-attempt0" and second.tags[RECOVERS_TAG] == batch_id

        # A recovery run that fails is requested again, under a new key.
        instance.add_run(dg.DagsterRun(job_name="archive_job", status=dg.DagsterRunStatus.FAILURE,
                                       tags={**ARCHIVE_TAGS, RECOVERS_TAG: batch_id}))
        again, _ = tick(cursor)
        assert again.run_key == f"recover-{batch_id}-attempt1"

        result = dg.materialize(archive_defs.assets, resources=build_resources(settings), tags=again.tags)
        assert result.success and not store.list_files(INCOMPLETE_DIR)
    assert_each_once(spark, store, mongo_db, docs)
