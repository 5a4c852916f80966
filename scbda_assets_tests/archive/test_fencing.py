"""Fencing (SPEC §8.10) and waiters that never give up on a dead holder (issue 21, Deliver 9), on a real mongod:
the epoch grows with every take-over, a stale writer's fence fails, its manifest versions rank below the current
holder's, a holder whose process is gone is taken over at once, and a holder that stopped renewing is waited out."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.lease import ArchiveBusy, ArchiveLease, LeaseLost, current_holder
from scbda_assets.archive.storage import ArchiveStore

BATCH = "20261120T123000Z-0123abcd"


def _stop_heartbeat(lease: ArchiveLease) -> None:
    """As after SIGSTOP or SIGKILL: the heartbeat thread no longer renews."""
    lease._stop.set()
    lease._thread.join()


def test_every_takeover_grows_the_epoch_and_fences_the_old_holder(mongo_db):
    first = ArchiveLease(mongo_db, "writer A", ttl_s=1.0, wait_s=0).acquire()
    epoch = first.epoch
    _stop_heartbeat(first)
    time.sleep(1.2)
    again = ArchiveLease(mongo_db, "writer A", ttl_s=5, wait_s=0).acquire()  # the same owner, after expiry
    try:
        assert again.epoch == epoch + 1 and current_holder(mongo_db).epoch == epoch + 1
        with pytest.raises(LeaseLost, match=f"epoch {epoch}"):
            first.fence()  # same owner name, older epoch: fenced off
        again.fence()
    finally:
        again.release()
    third = ArchiveLease(mongo_db, "writer B", ttl_s=5, wait_s=0).acquire()  # after a release: grows too
    try:
        assert third.epoch == epoch + 2
    finally:
        third.release()


def test_a_stale_writers_manifest_version_never_lands_over_complete(tmp_path):
    store = ArchiveStore((tmp_path / "archive").as_uri())
    manifest = mf.new_manifest(BATCH, created_at=_t(), start=_t(), cutoff=_t(), collections=["orders_fact"])
    manifest_store.write_manifest(store, manifest, 3)
    manifest_store.write_manifest(store, {**manifest, "status": mf.VERIFIED}, 4)  # the recovery, epoch 4
    manifest_store.write_manifest(store, {**manifest, "status": mf.COMPLETE}, 4)
    manifest_store.write_manifest(store, {**manifest, "status": mf.VERIFIED}, 3)  # the writer of epoch 3, resumed
    chosen = manifest_store.read_manifest(store, BATCH)
    assert (chosen["status"], chosen["epoch"]) == (mf.COMPLETE, 4)
    kept = [path.rsplit("/", 1)[1] for _, path in manifest_store.versions(store, BATCH)]
    assert kept == [f"{BATCH}.2.e4.json", f"{BATCH}.1.e4.json"]  # the two top-ranked versions stay


def _t():
    import datetime as dt

    return dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)


def test_a_holder_whose_process_is_gone_is_taken_over_at_once(mongo_db, settings):
    code = ("import pymongo, sys; from scbda_assets.archive.lease import ArchiveLease; "
            f"db = pymongo.MongoClient({settings.mongo_uri!r}, tz_aware=True)[{settings.mongo_db!r}]; "
            "lease = ArchiveLease(db, 'scbda archive crashed', ttl_s=60, wait_s=0).acquire(); "
            "print(lease.epoch, flush=True); import os; os._exit(0)")  # dies without releasing (like SIGKILL)
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    holder = current_holder(mongo_db)
    assert holder.owner == "scbda archive crashed" and holder.epoch == int(dead.stdout)
    began = time.monotonic()
    with ArchiveLease(mongo_db, "re-run", ttl_s=60, wait_s=0) as lease:  # no TTL to wait out (60 s)
        assert time.monotonic() - began < 5
        assert lease.epoch == holder.epoch + 1 and current_holder(mongo_db).owner == "re-run"


def test_a_live_holder_is_named_with_the_time_until_it_can_be_taken(mongo_db):
    with ArchiveLease(mongo_db, "writer A", ttl_s=30, wait_s=0):
        with pytest.raises(ArchiveBusy) as busy:
            ArchiveLease(mongo_db, "writer B", ttl_s=30, wait_s=0.3).acquire()
    message = str(busy.value)
    assert "writer A" in message and "it can be taken in" in message and "nothing was changed" in message
    assert "\n" not in message


def test_a_waiter_waits_out_a_holder_that_stopped_renewing(mongo_db):
    stalled = ArchiveLease(mongo_db, "paused writer", ttl_s=2.0, wait_s=0).acquire()  # this process: alive
    _stop_heartbeat(stalled)
    time.sleep(1.2)  # more than half its TTL without a heartbeat
    began = time.monotonic()
    with ArchiveLease(mongo_db, "waiter", ttl_s=5, wait_s=0.2) as lease:  # waits past its own 0.2 s
        waited = time.monotonic() - began
        assert 0.2 < waited < 4 and lease.epoch == stalled.epoch + 1
    with pytest.raises(LeaseLost):
        stalled.fence()
