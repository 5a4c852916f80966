"""The archive lease on a real mongod: one holder at a time, a loser that waits briefly and names the holder, a
heartbeat that keeps a long run's lease, takeover only after expiry, and a writer that knows it lost its lease."""

from __future__ import annotations

import time

import pytest

from scbda_assets.archive.lease import (LEASE_COLLECTION, ArchiveBusy, ArchiveLease, LeaseLost, current_holder,
                                        lease_timing)
from scbda_assets.settings import ConfigError


def test_second_writer_waits_briefly_then_is_told_who_holds_it(mongo_db):
    with ArchiveLease(mongo_db, "writer A", ttl_s=30, wait_s=0):
        began = time.monotonic()
        with pytest.raises(ArchiveBusy) as busy:
            ArchiveLease(mongo_db, "writer B", ttl_s=30, wait_s=1.0).acquire()
        assert 1.0 <= time.monotonic() - began < 5
        message = str(busy.value)
        assert "writer A" in message and "nothing was changed" in message and "\n" not in message
        assert current_holder(mongo_db).owner == "writer A"
    assert current_holder(mongo_db) is None  # released
    with ArchiveLease(mongo_db, "writer B", ttl_s=30, wait_s=0):
        assert current_holder(mongo_db).owner == "writer B"


def test_loser_gets_the_lease_when_the_holder_releases_within_the_wait(mongo_db):
    first = ArchiveLease(mongo_db, "writer A", ttl_s=30, wait_s=0).acquire()
    import threading

    threading.Timer(0.8, first.release).start()
    second = ArchiveLease(mongo_db, "writer B", ttl_s=30, wait_s=5).acquire()
    try:
        assert current_holder(mongo_db).owner == "writer B"
    finally:
        second.release()


def test_heartbeat_keeps_the_lease_beyond_its_ttl(mongo_db):
    with ArchiveLease(mongo_db, "long run", ttl_s=1.5, wait_s=0) as lease:
        time.sleep(3.5)
        lease.ensure_held()
        with pytest.raises(ArchiveBusy):
            ArchiveLease(mongo_db, "other", ttl_s=1.5, wait_s=0.5).acquire()


def test_expired_lease_is_taken_over_and_the_old_holder_stops(mongo_db):
    crashed = ArchiveLease(mongo_db, "crashed run", ttl_s=1.0, wait_s=0).acquire()
    crashed._stop.set()  # its heartbeat dies with the process (as after SIGKILL)
    crashed._thread.join()
    with pytest.raises(ArchiveBusy):
        ArchiveLease(mongo_db, "early recovery", ttl_s=5, wait_s=0).acquire()
    time.sleep(1.2)
    with ArchiveLease(mongo_db, "recovery", ttl_s=5, wait_s=0):
        assert current_holder(mongo_db).owner == "recovery"
        with pytest.raises(LeaseLost, match="crashed run"):
            crashed.ensure_held()
    assert mongo_db[LEASE_COLLECTION].count_documents({"owner": {"$ne": None}}) == 0


def test_lease_timing_from_the_environment_is_validated():
    assert lease_timing({}) == (30.0, 10.0)
    assert lease_timing({"SCBDA_ARCHIVE_LEASE_SECONDS": "4", "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "0"}) == (4.0, 0.0)
    for bad in ({"SCBDA_ARCHIVE_LEASE_SECONDS": "soon"}, {"SCBDA_ARCHIVE_LEASE_SECONDS": "0.5"},
                {"SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "-1"}):
        with pytest.raises(ConfigError, match="expected a number of seconds"):
            lease_timing(bad)
