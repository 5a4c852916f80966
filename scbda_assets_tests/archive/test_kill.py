"""A real crash: `scbda archive` in a subprocess, SIGKILLed a seeded random delay into its batch, several times; then a
re-run. Nothing lost (every document hot or cold at every point), nothing duplicated at the end."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import archived_ids, assert_each_once, hot_ids


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scbda_assets.cli", "archive"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.subprocess_clock
@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_loses_and_duplicates_nothing(test_env, spark_server, mongo_db, spark):
    now = dt.datetime.now(dt.UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=8)
    original = {
        "orders_fact": documents.orders(start, now, 6000, seed=31),
        "shipments_fact": documents.shipments(start, now, 400, seed=32, received_at=start + dt.timedelta(hours=1)),
        "inventory_fact": documents.inventory(start, now, 1500, seed=33),
    }
    documents.insert_all(mongo_db, original)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env,
           "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001",
           # A killed run's lease expires after 3 s; the next run waits up to 5 s for it (then recovers).
           "SCBDA_ARCHIVE_LEASE_SECONDS": "3", "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "5"}
    store = ArchiveStore(test_env["SCBDA_ARCHIVE_URI"])
    rng = np.random.default_rng(20261122)
    killed, interrupted_batches = 0, set()
    # Each kill lands a seeded moment after the batch opened (its incomplete marker exists): a fixed delay from the
    # process start missed every batch once the archive got faster than the delays.
    for delay in rng.uniform(0.0, 6.0, size=5):
        process = _start(env)
        opened_by = time.monotonic() + 120
        while process.poll() is None and not store.list_files("_manifests/_incomplete") \
                and time.monotonic() < opened_by:
            time.sleep(0.02)
        time.sleep(float(delay))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
        interrupted_batches |= set(store.list_files("_manifests/_incomplete"))
        print(f"delay {delay:.2f}s killed={process.returncode == -signal.SIGKILL} "
              f"incomplete={store.list_files('_manifests/_incomplete')} hot={mongo_db.orders_fact.count_documents({})}")
        for name, docs in original.items():  # nothing lost, whatever the moment of the kill
            present = set(archived_ids(spark, store, name)) | set(hot_ids(mongo_db, name))
            assert {str(d["_id"]) for d in docs} <= present, name
    assert killed >= 1, "no run was interrupted: the delays are too long for this machine"
    began = time.monotonic()
    final = subprocess.run([sys.executable, "-m", "scbda_assets.cli", "archive"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    print(f"final run {time.monotonic() - began:.1f}s")
    summary = json.loads(final.stdout)
    assert summary["incomplete_batches"] == [] or summary["recovered_batches"]
    counts = assert_each_once(spark, store, mongo_db, original)
    assert counts["orders_fact"][1] > 0
    assert not store.list_files("_manifests/_incomplete")
