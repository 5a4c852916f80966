"""What the archive holds, for its readers (status, quality, history): the batches and their files.

The manifest catalog: one small summary per batch in the MongoDB collection ``archive_catalog``, so status,
verification and history read the batches they need without listing and reading every manifest file on every run.

The manifest files stay the source of truth: the catalog is updated whenever a manifest version is published, and
rebuilt from a full listing when it has never been synced with this archive root (a new database, an archive root
from before the catalog existed). A summary is ~400 bytes plus its partitions: a few hundred KB after thousands of
batches, nothing next to the size archival measures.

Each summary carries ``recorded_at`` (the server's time of its last write), so a reader that polls (history, every
minute) asks only for the batches recorded since its last read (``changed_since``) and reads no manifest file: the
catalog is the history layer's only reader of manifests (SPEC §8.12, "manifests are read incrementally").
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import datetime as dt

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.schema import ID_COLUMN
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.timeutil import parse_iso

CATALOG_COLLECTION = "archive_catalog"
_SYNCED = "_synced"
INDEXES = [IndexModel([("root", ASCENDING), ("recorded_at", ASCENDING)], name="root_recorded_at"),
           IndexModel([("root", ASCENDING), ("created_at", DESCENDING)], name="root_created_at")]


def summary(manifest: dict) -> dict:
    timings = manifest.get("timings_s", {}) or {}
    return {
        "_id": manifest["batch_id"],
        "status": manifest["status"],
        "created_at": manifest["created_at"],
        "start": manifest.get("start"),
        "cutoff": manifest["cutoff"],
        "duration_s": round(sum(timings.values()), 3),
        "collections": {
            name: {key: entry.get(key) for key in ("record_count", "malformed_count", "bytes_written",
                                                  "source_bytes", "deleted_count", "min_event_ts", "max_event_ts",
                                                  "partitions")}
            for name, entry in manifest["collections"].items() if entry
        },
    }


def record(db: Database, store: ArchiveStore, manifest: dict) -> None:
    fields = {key: value for key, value in summary(manifest).items() if key != "_id"}
    db[CATALOG_COLLECTION].update_one({"_id": manifest["batch_id"]},
                                      {"$set": {**fields, "root": store.root_uri},
                                       "$currentDate": {"recorded_at": True}}, upsert=True)


def forget(db: Database, batch_id: str) -> None:
    db[CATALOG_COLLECTION].delete_one({"_id": batch_id})


def batches(db: Database, store: ArchiveStore, *, status: str | None = None, limit: int = 0) -> list[dict]:
    """Batch summaries of this archive root, newest first (synced from the manifest files once if needed)."""
    ensure_synced(db, store)
    query = {"root": store.root_uri, **({"status": status} if status else {})}
    return list(db[CATALOG_COLLECTION].find(query).sort("created_at", DESCENDING).limit(limit))


def ensure_synced(db: Database, store: ArchiveStore) -> None:
    """Fill the catalog from one full listing of the manifests, once per archive root."""
    collection = db[CATALOG_COLLECTION]
    marker = f"{_SYNCED}:{store.root_uri}"
    if collection.find_one({"_id": marker}) is None:
        collection.create_indexes(INDEXES)
        for manifest in manifest_store.list_manifests(store):
            record(db, store, manifest)
        collection.replace_one({"_id": marker}, {"_id": marker, "root": "-"}, upsert=True)


def changed_since(db: Database, store: ArchiveStore, since: dt.datetime | None) -> list[dict]:
    """The summaries of this root recorded at or after ``since`` (None: all of them), oldest record first."""
    ensure_synced(db, store)
    collection = db[CATALOG_COLLECTION]
    if since is None:  # a catalog from before recorded_at existed: index it, stamp its records once
        collection.create_indexes(INDEXES)
        collection.update_many({"root": store.root_uri, "recorded_at": {"$exists": False}},
                               {"$currentDate": {"recorded_at": True}})
        query = {"root": store.root_uri}
    else:
        query = {"root": store.root_uri, "recorded_at": {"$gte": since}}
    return list(collection.find(query).sort("recorded_at", ASCENDING))


def partitions(store: ArchiveStore, batch: dict, collection_name: str) -> list[str]:
    """The partitions a batch summary names for a collection; a summary recorded before partitions were kept
    falls back to the batch's manifest file (once: the reader remembers the batch)."""
    entry = batch["collections"].get(collection_name)
    if not entry:
        return []
    if "partitions" in entry:
        return entry["partitions"] or []
    manifest = manifest_store.read_manifest(store, batch["_id"])
    return ((manifest or {}).get("collections", {}).get(collection_name) or {}).get("partitions", [])


def complete_batch_ids(db: Database, store: ArchiveStore, collection_name: str, limit: int) -> list[str]:
    """The newest ``limit`` complete batches holding ``collection_name``, oldest first."""
    found = [b["_id"] for b in batches(db, store, status=mf.COMPLETE) if collection_name in b["collections"]]
    return list(reversed(found[:limit]))


def newest_cutoff(db: Database, store: ArchiveStore):
    """The newest cutoff of any batch (what history's hand-over needs), without listing the manifests."""
    cutoffs = [parse_iso(b["cutoff"]) for b in batches(db, store)]
    return max(cutoffs, default=None)


def read_ids(store: ArchiveStore, files: list[str]) -> pa.Array:
    """The ``_id`` column of the given archive files, read back from the archive filesystem."""
    if not files:
        return pa.array([], pa.string())
    dataset = ds.dataset([store.path(path) for path in files], filesystem=store.fs, format="parquet")
    return dataset.to_table(columns=[ID_COLUMN])[ID_COLUMN].combine_chunks()


def list_manifests(store: ArchiveStore) -> list[dict]:
    """The newest valid version of every batch's manifest (see manifest_store)."""
    return manifest_store.list_manifests(store)


def recent_complete_manifests(db: Database, store: ArchiveStore, collection_name: str, limit: int) -> list[dict]:
    """The manifests of the newest ``limit`` complete batches holding ``collection_name``, oldest first (only their
    manifest files are read, never a listing of every manifest)."""
    return [manifest for batch_id in complete_batch_ids(db, store, collection_name, limit)
            if (manifest := manifest_store.read_manifest(store, batch_id)) is not None]
