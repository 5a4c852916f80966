"""Which archive batches the history layer has folded in (no Dagster here): one document per batch in
``<db>_history.archive_batches`` (``_id`` = batch id, the status and catalog record last folded), never one growing
array (a 16 MB document holds ~500k batch ids: about a year of archival at 100×).

New work comes from the manifest catalog (``archive.catalog.changed_since``): only the batches recorded since the
last read, minus ``GRACE`` (a record written just before a read may become visible just after it), minus those
already folded at that same record. No manifest file is listed or read here.
"""

from __future__ import annotations

import datetime as dt

from pymongo import UpdateOne
from pymongo.database import Database

from scbda_assets.archive import catalog
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history.store import get_state, set_state
from scbda_assets.timeutil import utc

FOLDED = "archive_batches"
CURSOR_KEY = "archive_catalog_cursor"
LEGACY_KEY = "archive_batches"  # state document whose ``complete`` array listed folded batch ids
GRACE = dt.timedelta(seconds=60)
_CHUNK = 10_000


def migrate_legacy_array(history: Database) -> int:
    """Move the ids of the old ``state.archive_batches.complete`` array into the collection (once; idempotent: a
    crash half-way redoes the upserts, then the array is removed)."""
    legacy = get_state(history, LEGACY_KEY).get("complete")
    if not legacy:
        return 0
    for start in range(0, len(legacy), _CHUNK):
        history[FOLDED].bulk_write([UpdateOne({"_id": batch_id}, {"$setOnInsert": {"status": mf.COMPLETE}},
                                              upsert=True) for batch_id in legacy[start : start + _CHUNK]],
                                   ordered=False)
    set_state(history, LEGACY_KEY, {"$unset": {"complete": ""}})
    return len(legacy)


def unfolded(db: Database, history: Database, store: ArchiveStore | None) -> list[dict]:
    """Catalog summaries of this root not yet folded in at their current record, oldest record first."""
    if store is None:
        return []
    migrate_legacy_array(history)
    cursor = utc(get_state(history, _cursor_key(store)).get("recorded_at"))
    candidates = catalog.changed_since(db, store, None if cursor is None else cursor - GRACE)
    if not candidates:
        return []
    seen = {}
    ids = [batch["_id"] for batch in candidates]
    for start in range(0, len(ids), _CHUNK):
        seen.update({doc["_id"]: doc for doc in history[FOLDED].find({"_id": {"$in": ids[start : start + _CHUNK]}})})
    return [batch for batch in candidates if not _folded(seen.get(batch["_id"]), batch)]


def mark_folded(history: Database, store: ArchiveStore | None, batches: list[dict], *, now: dt.datetime) -> None:
    """Record the batches as folded (after the work they caused is stored) and move the cursor."""
    if store is None or not batches:
        return
    history[FOLDED].bulk_write([UpdateOne({"_id": b["_id"]}, {"$set": {"status": b["status"],
                                                                    "recorded_at": b.get("recorded_at"),
                                                                    "folded_at": now}}, upsert=True)
                                for b in batches], ordered=False)
    recorded = [utc(b["recorded_at"]) for b in batches if b.get("recorded_at")]
    if recorded:
        set_state(history, _cursor_key(store), {"$max": {"recorded_at": max(recorded)}})


def _cursor_key(store: ArchiveStore) -> str:
    return f"{CURSOR_KEY}:{store.root_uri}"


def _folded(done: dict | None, batch: dict) -> bool:
    if done is None:
        return False
    if done.get("status") == mf.COMPLETE:
        return True  # a complete batch never changes its files again
    return done.get("recorded_at") is not None and utc(done["recorded_at"]) == utc(batch.get("recorded_at"))
