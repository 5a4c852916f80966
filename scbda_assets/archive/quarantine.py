"""Corrupt or unreadable archive files are moved aside, never a reason for every KPI to stop (SPEC §8.11).

    <root>/_quarantine/<original relative path>            the file itself, byte for byte (its ids exist nowhere else)
    <root>/_quarantine/<original relative path>.why.json   the record: original path, reason, size (its mtime: when)

A reader that cannot read a Parquet file of an hour folder calls ``quarantine_file``: the file leaves the hour
folder (so every reader, Spark included, reads the rest of the hour), the record names it, and its hour is flagged
(``flagged_hours``) until an operator puts a repaired file back (docs/archive.md, "Quarantine"). The record is a
file beside the quarantined one, not a MongoDB document: it lives and dies with the archive root it describes.
Nothing here deletes: a quarantined file keeps every byte it had.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.errors import first_line
from scbda_assets.timeutil import iso_z

QUARANTINE_DIR = "_quarantine"
RECORD_SUFFIX = ".why.json"
_log = logging.getLogger(__name__)


def quarantine_file(store: ArchiveStore, relative: str, error: BaseException) -> str | None:
    """Move an unreadable archive file to ``_quarantine/`` and record why. Returns its new path; None when it was
    gone already (another reader moved it) or cannot be moved now (the store itself failing: retried next read)."""
    target = _free_name(store, f"{QUARANTINE_DIR}/{relative}")
    try:
        store.move(relative, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.warning("could not quarantine unreadable archive file %s (%s): skipped for this read",
                     relative, first_line(exc))
        return None
    record = {"original": relative, "quarantined_as": target, "reason": first_line(error),
              "bytes": store.size(target)}
    try:
        store.write_new_text(target + RECORD_SUFFIX, json.dumps(record, sort_keys=True))
    except OSError as exc:  # the file is aside already; quarantined() reports it without a reason
        _log.warning("quarantined %s without its record: %s", relative, first_line(exc))
    _log.error("archive file %s is unreadable (%s): moved to %s; its hour is flagged, the rest is read",
               relative, record["reason"], target)
    return target


def quarantined(store: ArchiveStore | None) -> list[dict]:
    """Every quarantined file, oldest path first: original path, collection, hour, reason, bytes, when."""
    if store is None:
        return []
    files = store.list_files(QUARANTINE_DIR, recursive=True)
    records = {path[: -len(RECORD_SUFFIX)]: path for path in files if path.endswith(RECORD_SUFFIX)}
    found = []
    for path in files:
        if path.endswith(RECORD_SUFFIX) or path.endswith(".tmp"):
            continue
        entry = {"original": _original(path), "quarantined_as": path, "reason": None, "bytes": store.size(path),
                 "quarantined_at": None}
        if path in records:
            try:
                entry.update(json.loads(store.read_text(records[path])))
                entry["quarantined_at"] = iso_z(_modified(store, records[path]))
            except (OSError, ValueError):
                pass
        collection = entry["original"].split("/", 1)[0]
        entry["collection"] = collection
        entry["hour"] = _hour_of(entry["original"])
        found.append(entry)
    return found


def flagged_hours(store: ArchiveStore | None, entries: list[dict] | None = None) -> dict[str, list[str]]:
    """Per collection, the hours (ISO) with a quarantined file: their sums miss that file's rows."""
    hours: dict[str, set[str]] = {}
    for entry in quarantined(store) if entries is None else entries:
        if entry["hour"]:
            hours.setdefault(entry["collection"], set()).add(entry["hour"])
    return {collection: sorted(found) for collection, found in sorted(hours.items())}


def summary(store: ArchiveStore | None) -> dict:
    """For ``scbda archive --status`` and the archive assets' metadata: how many files, bytes, which hours."""
    entries = quarantined(store)
    return {"files": len(entries), "bytes": sum(e["bytes"] or 0 for e in entries),
            "hours": flagged_hours(store, entries),
            "entries": [{k: e[k] for k in ("original", "quarantined_as", "reason", "quarantined_at")}
                        for e in entries]}


def _modified(store: ArchiveStore, relative: str) -> dt.datetime | None:
    mtime = store.fs.get_file_info(store.path(relative)).mtime
    return mtime.astimezone(dt.UTC) if mtime else None


def _free_name(store: ArchiveStore, target: str) -> str:
    """``target``, or ``target.N`` when a file of that name was quarantined before (move never overwrites)."""
    candidate, n = target, 0
    while store.exists(candidate):
        n += 1
        candidate = f"{target}.{n}"
    return candidate


def _original(quarantined_path: str) -> str:
    original = quarantined_path[len(QUARANTINE_DIR) + 1:]
    head, _, tail = original.rpartition(".")
    return head if tail.isdigit() and head.endswith(".parquet") else original


def _hour_of(original: str) -> str | None:
    from scbda_assets.history.cold import partition_hour  # cold imports this module

    try:
        return iso_z(partition_hour(original.rsplit("/", 1)[0]))
    except (ValueError, IndexError):
        return None
