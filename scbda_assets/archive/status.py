"""The archive's status, as a managed online archive shows it (SPEC §8): archived documents and bytes per
collection, oldest and newest archived event time, the last runs (start, duration, documents, bytes, MB/s), any
incomplete batch and the lease holder. Read from the manifest catalog (no listing of every manifest).

Published as JSON to Redis key ``archive:status`` (with the deployment's key prefix) for the dashboard.
"""

from __future__ import annotations

import datetime as dt
import json

from pymongo.database import Database

from scbda_assets.archive import catalog, stuck
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.lease import current_holder
from scbda_assets.archive.policy import MB
from scbda_assets.archive.schema import SPECS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.timeutil import iso_z, parse_iso

STATUS_TTL_SECONDS = 7 * 24 * 3600  # every key has a TTL; an archive quiet for a week shows "no status"
LAST_RUNS = 10


def archive_status(db: Database, store: ArchiveStore, *, now: dt.datetime) -> dict:
    summaries = catalog.batches(db, store)
    complete = [b for b in summaries if b["status"] == mf.COMPLETE]
    per_collection = {}
    for spec in SPECS:
        entries = [b["collections"][spec.collection] for b in complete if spec.collection in b["collections"]]
        oldest = [e["min_event_ts"] for e in entries if e.get("min_event_ts")]
        newest = [e["max_event_ts"] for e in entries if e.get("max_event_ts")]
        per_collection[spec.collection] = {
            "documents": sum(e["record_count"] or 0 for e in entries),
            "bytes_written": sum(e["bytes_written"] or 0 for e in entries),
            "source_bytes": sum(e["source_bytes"] or 0 for e in entries),
            "oldest_event_ts": min(oldest, key=parse_iso, default=None),
            "newest_event_ts": max(newest, key=parse_iso, default=None),
            "batches": len(entries),
        }
    holder = current_holder(db)
    return {
        "generated_at": iso_z(now),
        "archive_uri": store.root_uri,
        "collections": per_collection,
        "totals": {
            "documents": sum(c["documents"] for c in per_collection.values()),
            "bytes_written": sum(c["bytes_written"] for c in per_collection.values()),
            "source_bytes": sum(c["source_bytes"] for c in per_collection.values()),
            "batches": len(complete),
        },
        "last_runs": [_run(b) for b in complete[:LAST_RUNS]],
        "incomplete_batches": _incomplete(store, summaries),
        # Batches whose recovery failed (unreadable manifest, poison batch): retried, parked after a few (stuck.py).
        "stuck_batches": stuck.problems(db, store),
        "lease": {"owner": holder.owner if holder else None,
                  "expires_at": iso_z(holder.expires_at) if holder and holder.expires_at else None},
    }


def _incomplete(store: ArchiveStore, summaries: list[dict]) -> list[dict]:
    """Batches not complete per the catalog, and every batch still marked incomplete on disk (also one whose
    manifest cannot be read: the marker is the record that never forgets)."""
    from scbda_assets.archive.protocol import INCOMPLETE_DIR  # protocol imports the heavy writer side

    found = {b["_id"]: {"batch_id": b["_id"], "status": b["status"], "started_at": b["created_at"],
                        "cutoff": b["cutoff"]} for b in summaries if b["status"] != mf.COMPLETE}
    for marker in store.list_files(INCOMPLETE_DIR):
        batch_id = marker.rsplit("/", 1)[-1]
        found.setdefault(batch_id, {"batch_id": batch_id, "status": "unknown", "started_at": None, "cutoff": None})
    return [found[key] for key in sorted(found)]


def _run(summary: dict) -> dict:
    documents = sum(e["record_count"] or 0 for e in summary["collections"].values())
    source = sum(e["source_bytes"] or 0 for e in summary["collections"].values())
    duration = summary.get("duration_s") or 0.0
    return {
        "batch_id": summary["_id"],
        "started_at": summary["created_at"],
        "duration_s": duration,
        "documents": documents,
        "source_bytes": source,
        "bytes_written": sum(e["bytes_written"] or 0 for e in summary["collections"].values()),
        "mb_per_s": round(source / MB / duration, 6) if duration > 0 else None,
        "cutoff": summary["cutoff"],
    }


def publish_status(redis_client, key: str, status: dict) -> None:
    """One SET with a TTL (a reader never sees half a status)."""
    redis_client.set(key, json.dumps(status, sort_keys=True), ex=STATUS_TTL_SECONDS)
