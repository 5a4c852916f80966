"""Fencing with real processes (SPEC §8.10): `scbda archive` SIGSTOPped past its lease while another run takes the
batch over and finishes it, then SIGCONT; and a re-run at once after three SIGKILLs. Every business id counted in
MongoDB and in the hour folders (DuckDB) afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest

from scbda_assets.archive.lease import current_holder
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets_tests.archive.test_concurrency import (EXIT_BUSY, _cli, assert_every_business_id_once,  # noqa: F401
                                                         hot_store, writer_env)
from scbda_assets_tests.archive.visibility import assert_readers_see_each_once

pytestmark = pytest.mark.subprocess_clock


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _held_by(mongo_db, pid: int) -> bool:
    holder = current_holder(mongo_db)
    return holder is not None and f"pid {pid}" in holder.owner


@pytest.mark.slow
def test_a_writer_resumed_after_its_lease_was_taken_over_changes_nothing(writer_env, hot_store, mongo_db, spark):
    _, original = hot_store
    store = ArchiveStore(writer_env["SCBDA_ARCHIVE_URI"])
    paused = _cli(writer_env)
    _wait_for(lambda: store.list_files(INCOMPLETE_DIR))
    time.sleep(0.5)  # into its batch: selecting, writing
    os.killpg(paused.pid, signal.SIGSTOP)
    try:
        holder = current_holder(mongo_db)
        # The recovery waits the paused writer's TTL out (its process exists: not taken over at once), finishes it.
        recovery = _cli({**writer_env, "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "1"})
        out, err = recovery.communicate(timeout=300)
        assert recovery.returncode == 0, err[-2000:]
        assert current_holder(mongo_db) is None or current_holder(mongo_db).epoch > holder.epoch
        assert not store.list_files(INCOMPLETE_DIR)
        finished = {name: sorted(store.list_files(name, recursive=True)) for name in original}
    finally:
        os.killpg(paused.pid, signal.SIGCONT)
    _, err = paused.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    assert paused.returncode == EXIT_BUSY and len(lines) == 1, err[-3000:]
    assert "lease lost" in lines[0] and "Traceback" not in err
    # The resumed writer removed nothing the recovery committed, and committed nothing of its own.
    assert {name: sorted(store.list_files(name, recursive=True)) for name in original} == finished
    assert_every_business_id_once(spark, store, mongo_db, original)
    counts = assert_readers_see_each_once(store, mongo_db, original)
    assert counts["orders_fact"][1] > 0


@pytest.mark.slow
def test_a_rerun_right_after_three_sigkills_does_not_wait_for_the_lease(writer_env, hot_store, mongo_db, spark):
    _, original = hot_store
    # A long TTL: a re-run that had to wait it out would be refused (wait 0).
    env = {**writer_env, "SCBDA_ARCHIVE_LEASE_SECONDS": "120", "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "0"}
    store = ArchiveStore(env["SCBDA_ARCHIVE_URI"])
    epochs, killed_holding = [], 0
    for delay in (0.3, 0.8, 1.5):
        process = _cli(env)
        _wait_for(lambda: process.poll() is not None or _held_by(mongo_db, process.pid))
        holder = current_holder(mongo_db)
        assert holder is not None and f"pid {process.pid}" in holder.owner, "the run never took the lease"
        # The epoch is read while this run holds the lease: a run that finishes its work inside `delay` releases
        # the lease, and reading it after the kill (as this test once did) then found no holder (CI, 2026-12-04).
        epochs.append(holder.epoch)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        killed_holding += process.returncode == -signal.SIGKILL and _held_by(mongo_db, process.pid)
    assert epochs == sorted(set(epochs)), epochs  # each re-run took over at once, with a new epoch
    assert killed_holding >= 1, "no run was killed while it held the lease: nothing was tested"
    began = time.monotonic()
    final = _cli(env)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-2000:]
    print(f"re-run after 3 SIGKILLs: {time.monotonic() - began:.1f} s")
    assert not store.list_files(INCOMPLETE_DIR)
    assert_every_business_id_once(spark, store, mongo_db, original)
    assert_readers_see_each_once(store, mongo_db, original)
