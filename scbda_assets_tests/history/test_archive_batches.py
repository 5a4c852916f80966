"""The history layer's record of folded archive batches is a collection, not a growing array, and it learns of new
batches from the manifest catalog: a refresh lists ``_manifests/`` at most once per new batch (once in all when the
catalog carries partitions), never on every run (real mongod, real manifest files)."""

from __future__ import annotations

import datetime as dt

from scbda_assets.archive import catalog, layout, manifest_store
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import archive_batches, maintain
from scbda_assets.history.store import HOURS, STATE, history_database
from scbda_assets_tests.documents import T, order

MINUTE = dt.timedelta(minutes=1)


class CountingStore(ArchiveStore):
    """The test's archive root, counting the listings of the manifest folder."""

    manifest_listings = 0

    def list_files(self, relative_dir: str, **kwargs) -> list[str]:
        if relative_dir.rstrip("/") == layout.MANIFEST_DIR:
            self.manifest_listings += 1
        return super().list_files(relative_dir, **kwargs)


def _publish_batch(db, store, n: int, hour: dt.datetime) -> str:
    """A complete batch naming ``hour`` (its manifest file and catalog record, as the protocol writes them)."""
    batch_id = layout.new_batch_id(T - dt.timedelta(hours=2) + n * MINUTE, f"{n:08x}")
    manifest = mf.new_manifest(batch_id, created_at=T, start=hour, cutoff=hour + dt.timedelta(hours=1),
                               collections=["orders_fact", "shipments_fact"])
    manifest["collections"]["orders_fact"] = mf.collection_entry(
        record_count=1, malformed_count=0, min_event_ts=hour, max_event_ts=hour, partitions=[layout.partition_dir(hour)],
        files=[], bytes_written=1, source_bytes=1)
    manifest["status"] = mf.COMPLETE
    manifest_store.write_manifest(store, manifest)
    catalog.record(db, store, manifest)
    return batch_id


def _built_at(history, hour: dt.datetime) -> dt.datetime | None:
    doc = history[HOURS].find_one({"_id": f"orders|{hour:%Y-%m-%dT%H}"})
    return doc["built_at"].replace(tzinfo=dt.UTC) if doc else None


def test_new_batches_are_read_from_the_catalog_without_listing_the_manifests(chain_db, settings):
    store = CountingStore(settings.archive_uri)
    history = history_database(chain_db)
    hours = [T - dt.timedelta(hours=h) for h in (30, 20, 10)]
    chain_db.orders_fact.insert_many([order(f"O-{i}", "SKU-STAPLE-001", "DC-KHI", h + MINUTE)
                                      for i, h in enumerate(hours)])
    for n, hour in enumerate(hours[:2]):
        _publish_batch(chain_db, store, n, hour)
    store.manifest_listings = 0

    first = maintain.refresh(chain_db, store, now=T)
    assert first["archive_batches_folded"] == 2 and store.manifest_listings <= 1  # the catalog's one-time sync
    assert history[archive_batches.FOLDED].count_documents({}) == 2

    store.manifest_listings = 0
    quiet = [maintain.refresh(chain_db, store, now=T + k * MINUTE) for k in range(1, 4)]
    assert [r["archive_batches_folded"] for r in quiet] == [0, 0, 0] and store.manifest_listings == 0

    # A new batch naming an hour already built: found from its catalog record alone, and the hour is rebuilt.
    _publish_batch(chain_db, store, 7, hours[2])
    store.manifest_listings = 0
    later = T + 5 * MINUTE
    report = maintain.refresh(chain_db, store, now=later)
    assert report["archive_batches_folded"] == 1 and store.manifest_listings == 0
    assert _built_at(history, hours[2]) == later and _built_at(history, hours[0]) == T


def test_catalog_records_without_partitions_read_each_manifest_once(chain_db, settings):
    store = CountingStore(settings.archive_uri)
    for n in range(3):
        _publish_batch(chain_db, store, n, T - dt.timedelta(hours=5 + n))
    catalog.ensure_synced(chain_db, store)
    chain_db[catalog.CATALOG_COLLECTION].update_many(  # records written before partitions and recorded_at existed
        {}, {"$unset": {"recorded_at": "", **{f"collections.{c}.partitions": "" for c in ("orders_fact",)}}})
    store.manifest_listings = 0
    assert maintain.refresh(chain_db, store, now=T)["archive_batches_folded"] == 3
    assert store.manifest_listings == 3  # one per batch, to read its partitions
    store.manifest_listings = 0
    assert maintain.refresh(chain_db, store, now=T + MINUTE)["archive_batches_folded"] == 0
    assert store.manifest_listings == 0


def test_the_folded_batch_array_is_migrated_to_a_collection(chain_db, settings):
    store = ArchiveStore(settings.archive_uri)
    history = history_database(chain_db)
    folded = [_publish_batch(chain_db, store, n, T - dt.timedelta(hours=3)) for n in range(4)]
    legacy = [f"20250101T000000Z-{n:08x}" for n in range(25_000)] + folded  # ~a year of batch ids at 100x
    history[STATE].insert_one({"_id": archive_batches.LEGACY_KEY, "complete": legacy})

    report = maintain.refresh(chain_db, store, now=T)
    assert report["archive_batches_folded"] == 0  # every catalog batch was folded before the migration
    assert "complete" not in history[STATE].find_one({"_id": archive_batches.LEGACY_KEY})
    assert history[archive_batches.FOLDED].count_documents({}) == len(legacy)
    assert set(history[archive_batches.FOLDED].distinct("_id")) == set(legacy)
    assert archive_batches.migrate_legacy_array(history) == 0  # done once

    new = _publish_batch(chain_db, store, 9, T - dt.timedelta(hours=4))
    assert [b["_id"] for b in archive_batches.unfolded(chain_db, history, store)] == [new]
