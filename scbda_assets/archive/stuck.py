"""Batches whose recovery failed (SPEC §8.10): counted, parked after PARK_AFTER failures, reported — never forgotten.

One document per such batch in the MongoDB collection ``archive_recovery``: ``failures``, ``parked``, ``last_error``
and the batch's window (from the catalog, also known when its manifest cannot be read). A parked batch is no longer
retried automatically (``scbda archive --retry-parked`` retries it); new batches skip its window, so its ids can
never be archived by two batches, and the other hours keep archiving. The marker stays until the batch completes.
"""

from __future__ import annotations

import datetime as dt

from pymongo.database import Database

from scbda_assets.archive import catalog
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.errors import first_line
from scbda_assets.timeutil import parse_iso

RECOVERY_COLLECTION = "archive_recovery"
PARK_AFTER = 3


def record_failure(db: Database, store: ArchiveStore, batch_id: str, error: BaseException) -> dict:
    """Count one failed recovery of ``batch_id``; returns its record (``parked`` once it failed PARK_AFTER times)."""
    window = catalog_window(db, store, batch_id)
    doc = db[RECOVERY_COLLECTION].find_one_and_update(
        {"_id": batch_id},
        [{"$set": {"root": store.root_uri, "failures": {"$add": [{"$ifNull": ["$failures", 0]}, 1]},
                   "last_error": first_line(error) or type(error).__name__, "last_failed_at": "$$NOW",
                   "start": window[0] if window else None, "cutoff": window[1] if window else None}},
         {"$set": {"parked": {"$gte": ["$failures", PARK_AFTER]}}}],
        upsert=True, return_document=True)
    return doc


def clear(db: Database, batch_id: str) -> None:
    db[RECOVERY_COLLECTION].delete_one({"_id": batch_id})


def unpark_all(db: Database, store: ArchiveStore) -> int:
    return db[RECOVERY_COLLECTION].update_many({"root": store.root_uri, "parked": True},
                                               {"$set": {"parked": False, "failures": 0}}).modified_count


def problems(db: Database, store: ArchiveStore) -> list[dict]:
    """Every batch with a failed recovery: batch_id, failures, parked, last_error."""
    return [{"batch_id": d["_id"], "failures": d["failures"], "parked": bool(d.get("parked")),
             "last_error": d.get("last_error", "")}
            for d in db[RECOVERY_COLLECTION].find({"root": store.root_uri}).sort("_id")]


def parked_ids(db: Database, store: ArchiveStore) -> set[str]:
    return {d["batch_id"] for d in problems(db, store) if d["parked"]}


def blocked_windows(db: Database, store: ArchiveStore) -> list[tuple[dt.datetime, dt.datetime] | None]:
    """The [start, cutoff) of every batch with a failed recovery (None: window unknown, nothing may be archived)."""
    windows = []
    for doc in db[RECOVERY_COLLECTION].find({"root": store.root_uri}):
        start, cutoff = doc.get("start"), doc.get("cutoff")
        windows.append((parse_iso(start), parse_iso(cutoff)) if start and cutoff else None)
    return windows


def catalog_window(db: Database, store: ArchiveStore, batch_id: str) -> tuple[str, str] | None:
    for summary in catalog.batches(db, store):
        if summary["_id"] == batch_id and summary.get("start") and summary.get("cutoff"):
            return summary["start"], summary["cutoff"]
    return None
