"""What a writer may still write again is never archived (SPEC §8.9), and manifests on a filesystem that refuses
overwrite-by-rename (HDFS) always have a valid version (SPEC §8.8). Real MongoDB + Spark Connect."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range, recover
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets_tests.archive.conftest import DATA_START, NOW, assert_each_once
from scbda_assets_tests.archive.test_protocol import END, Crash, crash_at


def _archive(db, spark, store, **kwargs):
    return archive_range(db, spark, store, start=DATA_START, end=END, now=kwargs.pop("now", NOW), safety_minutes=60,
                         **kwargs)


def test_cutoff_never_passes_the_generators_committed_clock(mongo_db, spark, store, hot):
    clock = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)  # a backfill inserted 09:30.. but did not commit
    mongo_db.generator_state.insert_one({"_id": "simulation", "as_of": clock})
    manifest = _archive(mongo_db, spark, store)
    assert manifest["cutoff"] == "2026-11-20T09:30:00Z"
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$lt": clock}}) == 0
    at_or_after = [d for d in hot["orders_fact"] if clock <= d["order_ts"] < END]
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$gte": clock, "$lt": END}}) == len(at_or_after) > 0
    assert_each_once(spark, store, mongo_db, hot)


def test_late_events_still_pending_in_the_generator_stay_hot(mongo_db, spark, store, hot):
    released = [d for d in hot["orders_fact"] if d["order_ts"] < END][:5]  # inserted, not yet dropped from pending
    mongo_db.generator_pending.insert_many([{"_id": d["order_id"], "collection": "orders_fact",
                                             "release_at": NOW, "doc": {}} for d in released])
    manifest = _archive(mongo_db, spark, store)
    assert manifest["collections"]["orders_fact"]["record_count"] == sum(
        d["order_ts"] < END for d in hot["orders_fact"]) - 5
    assert mongo_db.orders_fact.count_documents({"order_id": {"$in": [d["order_id"] for d in released]}}) == 5
    assert_each_once(spark, store, mongo_db, hot)
    mongo_db.generator_pending.delete_many({})  # the generator committed: now they may go
    later = _archive(mongo_db, spark, store, now=NOW + dt.timedelta(minutes=1))
    assert later["collections"]["orders_fact"]["record_count"] == 5
    assert_each_once(spark, store, mongo_db, hot)


class NoOverwriteStore(ArchiveStore):
    """HDFS-like: renaming onto an existing file fails. After every change it checks that each batch it has seen
    still has a valid manifest (the newest valid version), and records any moment without one."""

    def __init__(self, root_uri: str, crash_on_manifest_delete: int = 0):
        super().__init__(root_uri)
        self.batches: set[str] = set()
        self.gaps: list[str] = []
        self.crash_on_manifest_delete = crash_on_manifest_delete
        self.manifest_deletes = 0

    def move(self, source: str, target: str) -> None:
        if self.exists(target):
            raise OSError(f"rename refused: {target} exists (no atomic overwrite)")
        super().move(source, target)
        self._check(target)

    def write_new_text(self, relative: str, text: str) -> None:
        target = self.path(relative)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(f"{target}.tmp") as stream:
            stream.write(text.encode())
        self.move(f"{relative}.tmp", relative)

    def ensure_text(self, relative: str, text: str) -> None:
        assert not relative.startswith("_manifests/2"), "a manifest is never overwritten"
        super().ensure_text(relative, text)

    def delete_file(self, relative: str) -> None:
        if manifest_store.parse_name(relative) and relative.startswith("_manifests/"):
            self.manifest_deletes += 1
            if self.manifest_deletes == self.crash_on_manifest_delete:
                raise Crash("between publishing a manifest version and deleting the old one")
        super().delete_file(relative)
        self._check(relative)

    def _check(self, changed: str) -> None:
        parsed = manifest_store.parse_name(changed)
        if parsed and changed.startswith("_manifests/"):
            self.batches.add(parsed[0])
        for batch_id in self.batches:
            if manifest_store.read_manifest(self, batch_id) is None and self.exists(f"{INCOMPLETE_DIR}/{batch_id}"):
                self.gaps.append(f"{batch_id} after {changed}")


def test_manifests_without_atomic_overwrite_are_never_missing(mongo_db, spark, spark_settings, hot):
    store = NoOverwriteStore(spark_settings.archive_uri)
    manifest = _archive(mongo_db, spark, store)
    assert manifest["status"] == mf.COMPLETE and store.gaps == []
    assert [seq for seq, _ in manifest_store.versions(store, manifest["batch_id"])] == [2, 1]  # the last two
    assert_each_once(spark, store, mongo_db, hot)


def test_crash_between_new_manifest_version_and_old_delete_converges(mongo_db, spark, spark_settings, hot):
    # The first manifest delete: "complete" published, the oldest of three versions ("pending") not yet removed.
    store = NoOverwriteStore(spark_settings.archive_uri, crash_on_manifest_delete=1)
    with pytest.raises(Crash):
        _archive(mongo_db, spark, store)
    (batch_id,) = store.batches
    assert len(manifest_store.versions(store, batch_id)) == 3  # the reader takes the newest
    assert manifest_store.read_manifest(store, batch_id)["status"] == mf.COMPLETE
    [finished] = recover(mongo_db, spark, store)
    assert finished["status"] == mf.COMPLETE and store.gaps == []
    assert len(manifest_store.versions(store, batch_id)) == 2  # the last two kept
    assert_each_once(spark, store, mongo_db, hot)


def test_a_torn_newest_version_falls_back_to_the_previous_one(mongo_db, spark, spark_settings, hot):
    store = ArchiveStore(spark_settings.archive_uri)
    with pytest.raises(Crash):
        _archive(mongo_db, spark, store, checkpoint=crash_at("manifest"))
    (marker,) = store.list_files(INCOMPLETE_DIR)
    batch_id = marker.rsplit("/", 1)[-1]
    store.write_new_text(manifest_store.version_file(batch_id, 9), '{"batch_id": "torn')
    assert manifest_store.read_manifest(store, batch_id)["status"] == mf.VERIFIED
    assert [m["status"] for m in recover(mongo_db, spark, store)] == [mf.COMPLETE]
    assert_each_once(spark, store, mongo_db, hot)
