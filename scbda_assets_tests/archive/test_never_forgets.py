"""Recovery never forgets (SPEC §8.10) and other engines see only committed rows (§8.13), on real MongoDB + Spark:
a crash at every protocol step, then a torn or unreadable newest manifest version; DuckDB over the hour folders and
MongoDB counted after each."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store, stuck
from scbda_assets.archive.protocol import INCOMPLETE_DIR, RecoveryFailed, archive_range, recover
from scbda_assets.archive.status import archive_status
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.quality.archive_verification import verify_recent_batches
from scbda_assets_tests.archive.conftest import DATA_START, NOW
from scbda_assets_tests.archive.test_protocol import END, Crash, crash_at
from scbda_assets_tests.archive.visibility import assert_readers_see_each_once, assert_readers_see_no_overlap

STEPS = [("opened", 1), ("written", 1), ("manifest", 1), ("deleted_chunk", 2), ("committed", 1), ("complete", 1)]


class FlakyStore(ArchiveStore):
    """Reads of the files in ``failing`` fail, as while a datanode is down, until the set is emptied."""

    def __init__(self, root_uri: str):
        super().__init__(root_uri)
        self.failing: set[str] = set()

    def read_text(self, relative: str) -> str:
        if relative in self.failing:
            raise OSError(f"could not obtain block of {relative}")
        return super().read_text(relative)


def _archive(db, spark, store, **kwargs):
    return archive_range(db, spark, store, start=kwargs.pop("start", DATA_START), end=kwargs.pop("end", END),
                         now=kwargs.pop("now", NOW), safety_minutes=60, **kwargs)


def _crash(db, spark, store, step, occurrence) -> str:
    with pytest.raises(Crash):
        _archive(db, spark, store, checkpoint=crash_at(step, occurrence), delete_chunk=50)
    (marker,) = store.list_files(INCOMPLETE_DIR)
    return marker.rsplit("/", 1)[-1]


@pytest.mark.parametrize("step,occurrence", STEPS)
def test_readers_of_the_hour_folders_never_see_rows_still_in_mongodb(mongo_db, spark, spark_settings, hot, step,
                                                                      occurrence):
    store = ArchiveStore(spark_settings.archive_uri)
    _crash(mongo_db, spark, store, step, occurrence)
    assert_readers_see_no_overlap(store, mongo_db, hot)  # before any recovery
    assert [m["status"] for m in recover(mongo_db, spark, store)] == [mf.COMPLETE]
    counts = assert_readers_see_each_once(store, mongo_db, hot)
    assert counts["orders_fact"][1] == sum(d["order_ts"] < END for d in hot["orders_fact"])


@pytest.mark.parametrize("step,occurrence", STEPS)
def test_a_torn_newest_manifest_at_every_step_converges(mongo_db, spark, spark_settings, hot, step, occurrence):
    store = ArchiveStore(spark_settings.archive_uri)
    batch_id = _crash(mongo_db, spark, store, step, occurrence)
    _, newest = manifest_store.versions(store, batch_id)[0]
    text = store.read_text(newest)
    with open(store.path(newest), "w") as torn:  # a torn write: half of it
        torn.write(text[: len(text) // 2])
    recovered = recover(mongo_db, spark, store)
    if step in ("opened", "written"):  # only version 0 (pending) existed: nothing was deleted, the batch is dropped
        assert recovered == [] and mongo_db.orders_fact.count_documents({"order_ts": {"$lt": END}}) > 0
        assert _archive(mongo_db, spark, store)["status"] == mf.COMPLETE
    else:  # verified/complete rebuilt from the attempt's own files, or the previous version
        assert [m["status"] for m in recovered] == [mf.COMPLETE]
    assert not store.list_files(INCOMPLETE_DIR)
    assert_readers_see_each_once(store, mongo_db, hot)
    assert _archive(mongo_db, spark, store, now=NOW + dt.timedelta(minutes=1)) is None  # nothing archived twice
    assert_readers_see_each_once(store, mongo_db, hot)


@pytest.mark.parametrize("step,occurrence", [("manifest", 1), ("deleted_chunk", 2), ("committed", 1)])
def test_an_unreadable_manifest_keeps_its_marker_is_reported_and_retried(mongo_db, spark, spark_settings, hot, step,
                                                                         occurrence):
    store = FlakyStore(spark_settings.archive_uri)
    batch_id = _crash(mongo_db, spark, store, step, occurrence)
    store.failing = {path for _, path in manifest_store.versions(store, batch_id)}  # every version unreadable
    with pytest.raises(RecoveryFailed, match=batch_id):
        recover(mongo_db, spark, store)
    assert store.list_files(INCOMPLETE_DIR) == [f"{INCOMPLETE_DIR}/{batch_id}"]  # not forgotten
    status = archive_status(mongo_db, store, now=NOW)
    assert [b["batch_id"] for b in status["stuck_batches"]] == [batch_id]
    assert batch_id in {b["batch_id"] for b in status["incomplete_batches"]}
    assert any(batch_id in p for p in verify_recent_batches(store, mongo_db, "orders_fact")["problems"])
    # Meanwhile no new batch takes its hours (its ids would then be in two batches).
    with pytest.raises(RecoveryFailed):
        _archive(mongo_db, spark, store, now=NOW + dt.timedelta(minutes=1))
    assert_readers_see_no_overlap(store, mongo_db, hot)
    store.failing = set()  # the datanode is back
    assert [m["status"] for m in recover(mongo_db, spark, store)] == [mf.COMPLETE]
    assert stuck.problems(mongo_db, store) == [] and not store.list_files(INCOMPLETE_DIR)
    assert_readers_see_each_once(store, mongo_db, hot)


def test_a_poison_batch_is_parked_while_other_hours_keep_archiving(mongo_db, spark, spark_settings, hot):
    store = FlakyStore(spark_settings.archive_uri)
    nine = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    with pytest.raises(Crash):  # a batch of hour 08 only, left verified, its manifest then unreadable for good
        _archive(mongo_db, spark, store, end=nine, checkpoint=crash_at("manifest"))
    (marker,) = store.list_files(INCOMPLETE_DIR)
    batch_id = marker.rsplit("/", 1)[-1]
    store.failing = {path for _, path in manifest_store.versions(store, batch_id)}
    for attempt in range(1, stuck.PARK_AFTER):
        with pytest.raises(RecoveryFailed, match=f"attempt {attempt} of"):
            _archive(mongo_db, spark, store)
    manifest = _archive(mongo_db, spark, store)  # parked now: hours 09-10 archive, 08 waits in MongoDB
    assert manifest["status"] == mf.COMPLETE and manifest["start"] == "2026-11-20T09:00:00Z"
    assert [(b["batch_id"], b["parked"]) for b in stuck.problems(mongo_db, store)] == [(batch_id, True)]
    assert store.list_files(INCOMPLETE_DIR) == [f"{INCOMPLETE_DIR}/{batch_id}"]
    assert any("parked" in p for p in verify_recent_batches(store, mongo_db, "orders_fact")["problems"])
    eight = [d for d in hot["orders_fact"] if d["order_ts"] < nine]
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$lt": nine}}) == len(eight) > 0
    assert_readers_see_no_overlap(store, mongo_db, hot)
    # Healed and retried by hand (scbda archive --retry-parked): everything converges, nothing twice.
    store.failing = set()
    stuck.unpark_all(mongo_db, store)
    assert [m["batch_id"] for m in recover(mongo_db, spark, store)] == [batch_id]
    assert_readers_see_each_once(store, mongo_db, hot)
