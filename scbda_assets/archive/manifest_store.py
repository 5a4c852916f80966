"""Manifests on a filesystem without atomic overwrite (SPEC §8.8): never a moment without a valid manifest.

A status change never overwrites: version N+1 is written under a temporary name, renamed to a NEW name
``_manifests/<batch_id>.<N+1>.json`` (renaming to a name that does not exist is atomic on HDFS as on POSIX), and only
then are the older versions deleted. Version 0 is ``<batch_id>.json``. A reader takes the highest version that parses
(a crash between the rename and the delete leaves two valid versions; the newer wins).

A catalog of manifest summaries (one JSON line per version, ``_manifests/_catalog/<batch_id>.<N>.json`` would need
a listing too) is kept in MongoDB instead, see ``catalog.py``; these files stay the source of truth.
"""

from __future__ import annotations

import re

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.storage import ArchiveStore

_VERSIONED = re.compile(r"^(?P<batch>[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})(?:\.(?P<seq>[0-9]+))?\.json$")


def version_file(batch_id: str, seq: int) -> str:
    return layout.manifest_file(batch_id) if seq == 0 else f"{layout.MANIFEST_DIR}/{batch_id}.{seq}.json"


def parse_name(name: str) -> tuple[str, int] | None:
    match = _VERSIONED.match(name.rsplit("/", 1)[-1])
    return (match["batch"], int(match["seq"] or 0)) if match else None


def versions(store: ArchiveStore, batch_id: str) -> list[tuple[int, str]]:
    """(seq, path) of a batch's manifest files, newest first."""
    found = []
    for path in store.list_files(layout.MANIFEST_DIR, prefix=batch_id):
        parsed = parse_name(path)
        if parsed and parsed[0] == batch_id:
            found.append((parsed[1], path))
    return sorted(found, reverse=True)


def _newest_valid(store: ArchiveStore, candidates: list[tuple[int, str]]) -> tuple[int, dict] | None:
    for seq, path in candidates:
        try:
            return seq, mf.loads(store.read_text(path))
        except (ValueError, OSError, KeyError):
            continue  # a torn or vanished version: the previous one is still there
    return None


def read_manifest(store: ArchiveStore, batch_id: str) -> dict | None:
    found = _newest_valid(store, versions(store, batch_id))
    return found[1] if found else None


def exists(store: ArchiveStore, batch_id: str) -> bool:
    return bool(versions(store, batch_id))


def write_manifest(store: ArchiveStore, manifest: dict) -> str:
    """Publish a new version of the batch's manifest, then remove the older ones. Returns the new path."""
    batch_id = manifest["batch_id"]
    older = versions(store, batch_id)
    seq = older[0][0] + 1 if older else 0
    target = version_file(batch_id, seq)
    store.write_new_text(target, mf.dumps(manifest))
    for _, path in older:
        store.delete_file(path)
    return target


def prune_older(store: ArchiveStore, batch_id: str) -> None:
    """Delete the versions older than the newest valid one (left by a crash between publish and delete)."""
    candidates = versions(store, batch_id)
    newest = _newest_valid(store, candidates)
    if newest is not None:
        for seq, path in candidates:
            if seq < newest[0]:
                store.delete_file(path)


def delete_manifest(store: ArchiveStore, batch_id: str) -> None:
    for _, path in versions(store, batch_id):
        store.delete_file(path)


def list_manifests(store: ArchiveStore) -> list[dict]:
    """The newest valid version of every batch's manifest (lists the whole folder: status and recovery only)."""
    by_batch: dict[str, list[tuple[int, str]]] = {}
    for path in store.list_files(layout.MANIFEST_DIR):
        parsed = parse_name(path)
        if parsed:
            by_batch.setdefault(parsed[0], []).append((parsed[1], path))
    manifests = []
    for batch_id in sorted(by_batch):
        found = _newest_valid(store, sorted(by_batch[batch_id], reverse=True))
        if found:
            manifests.append(found[1])
    return manifests
