"""The batch manifest (SPEC §8) — also the protocol's journal, so a re-run knows where a batch stopped.

status: ``pending``  written before any Parquet: the frozen cutoff and range; a re-run redoes the batch (nothing has
                     been deleted from MongoDB yet, so selecting again by the same cutoff converges);
        ``verified`` files written and read back (ids written == ids selected); a re-run only deletes;
        ``complete`` the archived ids are gone from MongoDB.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from scbda_assets.timeutil import iso_z, parse_iso  # noqa: F401 (parse_iso: how a manifest's times are read)

PENDING, VERIFIED, COMPLETE = "pending", "verified", "complete"
STATUSES = (PENDING, VERIFIED, COMPLETE)


def new_manifest(
    batch_id: str, *, created_at: dt.datetime, start: dt.datetime, cutoff: dt.datetime, collections: list[str]
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "created_at": iso_z(created_at),
        "start": iso_z(start),
        "cutoff": iso_z(cutoff),
        "status": PENDING,
        "collections": {name: None for name in collections},
    }


def collection_entry(
    *,
    record_count: int,
    malformed_count: int,
    min_event_ts: dt.datetime | None,
    max_event_ts: dt.datetime | None,
    partitions: list[str],
    files: list[str],
    bytes_written: int,
    source_bytes: int,
) -> dict[str, Any]:
    return {
        "record_count": record_count,
        "malformed_count": malformed_count,
        "min_event_ts": iso_z(min_event_ts),
        "max_event_ts": iso_z(max_event_ts),
        "partitions": partitions,
        "files": files,
        "bytes_written": bytes_written,
        "source_bytes": source_bytes,
        "deleted_count": None,
    }


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True)


def loads(text: str) -> dict[str, Any]:
    manifest = json.loads(text)
    missing = {"batch_id", "created_at", "cutoff", "status", "collections"} - set(manifest)
    if missing or manifest["status"] not in STATUSES:
        raise ValueError(f"not an archive manifest (missing {sorted(missing)} or bad status)")
    return manifest


def totals(manifest: dict[str, Any]) -> dict[str, int]:
    entries = [e for e in manifest["collections"].values() if e]
    return {
        "record_count": sum(e["record_count"] for e in entries),
        "bytes_written": sum(e["bytes_written"] for e in entries),
        "source_bytes": sum(e["source_bytes"] for e in entries),
    }
