"""Manifests on a filesystem without atomic overwrite (SPEC §8.8, §8.10): never a moment without a valid manifest,
and the previous version kept as the fallback.

A status change never overwrites: version N+1 is written under a temporary name, flushed, renamed to a NEW name
``_manifests/<batch_id>.<N+1>.e<epoch>.json`` (renaming to a name that does not exist is atomic on HDFS as on POSIX;
``write_new_text`` is durable). Versions are ranked by (epoch, N): a writer fenced off by a later take-over (lower
epoch) can still publish a version, but it ranks below every version of the current holder, so a stale ``verified``
never lands over ``complete``. The two top-ranked versions are kept; older ones are deleted. Legacy names
(``<batch_id>.json``, ``<batch_id>.<N>.json``) rank as epoch 0.

Reading (``read_manifest``): the top-ranked version that parses — but an unreadable top version falls back to the
previous one only when that one is ``verified`` or ``complete`` (redoing from there is idempotent: delete what is
already gone, move what is already moved). Behind a ``pending`` fallback the unreadable version may be a ``verified``
whose deletes have begun: redoing the selection would lose those ids, so ``ManifestUnreadable`` is raised and the
batch keeps its marker. A batch whose only versions are version 0 never reached ``verified`` (a ``verified`` is
always version >= 1 and is durable before any delete), so it deleted nothing and is safe to abandon.
"""

from __future__ import annotations

import re

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.storage import ArchiveStore

_VERSIONED = re.compile(
    r"^(?P<batch>[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})(?:\.(?P<seq>[0-9]+))?(?:\.e(?P<epoch>[0-9]+))?\.json$")
KEEP_VERSIONS = 2


class ManifestUnreadable(RuntimeError):
    """A batch has manifest versions but none that can be safely acted on; ``abandonable``: it never deleted."""

    def __init__(self, batch_id: str, detail: str, abandonable: bool):
        super().__init__(f"manifest of batch {batch_id} unreadable: {detail}")
        self.batch_id, self.abandonable = batch_id, abandonable


def version_file(batch_id: str, seq: int, epoch: int = 0) -> str:
    if epoch:
        return f"{layout.MANIFEST_DIR}/{batch_id}.{seq}.e{epoch}.json"
    return layout.manifest_file(batch_id) if seq == 0 else f"{layout.MANIFEST_DIR}/{batch_id}.{seq}.json"


def parse_name(name: str) -> tuple[str, int, int] | None:
    """(batch_id, seq, epoch) of a manifest file name, None for other files."""
    match = _VERSIONED.match(name.rsplit("/", 1)[-1])
    return (match["batch"], int(match["seq"] or 0), int(match["epoch"] or 0)) if match else None


def _ranked(found: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """(seq, path) newest first by (epoch, seq)."""
    return [(seq, path) for epoch, seq, path in sorted(found, reverse=True)]


def versions(store: ArchiveStore, batch_id: str) -> list[tuple[int, str]]:
    """(seq, path) of a batch's manifest files, top-ranked first."""
    found = []
    for path in store.list_files(layout.MANIFEST_DIR, prefix=batch_id):
        parsed = parse_name(path)
        if parsed and parsed[0] == batch_id:
            found.append((parsed[2], parsed[1], path))
    return _ranked(found)


def _load(store: ArchiveStore, path: str) -> dict | None:
    try:
        return mf.loads(store.read_text(path))
    except (ValueError, OSError, KeyError, UnicodeDecodeError):
        return None  # torn, corrupt, unreadable or vanished


def _choose(store: ArchiveStore, batch_id: str, candidates: list[tuple[int, str]]) -> dict | None:
    if not candidates:
        return None
    newest = _load(store, candidates[0][1])
    if newest is not None:
        return newest
    previous = _load(store, candidates[1][1]) if len(candidates) > 1 else None
    if previous is not None and previous["status"] in (mf.VERIFIED, mf.COMPLETE):
        return previous
    abandonable = all(seq == 0 for seq, _ in candidates)
    raise ManifestUnreadable(batch_id, f"{candidates[0][1]} cannot be read and no safe earlier version "
                             f"({len(candidates)} version(s) on disk)", abandonable)


def read_manifest(store: ArchiveStore, batch_id: str) -> dict | None:
    """The batch's manifest (see the module docstring); None when it has none; ManifestUnreadable."""
    return _choose(store, batch_id, versions(store, batch_id))


def exists(store: ArchiveStore, batch_id: str) -> bool:
    return bool(versions(store, batch_id))


def write_manifest(store: ArchiveStore, manifest: dict, epoch: int = 0) -> str:
    """Publish a new version of the batch's manifest (carrying ``epoch``), then keep only the two top-ranked
    versions. Returns the new path."""
    batch_id = manifest["batch_id"]
    older = versions(store, batch_id)
    seq = max((s for s, _ in older), default=-1) + 1
    target = version_file(batch_id, seq, epoch)
    store.write_new_text(target, mf.dumps({**manifest, "epoch": epoch}))
    prune(store, batch_id)
    return target


def prune(store: ArchiveStore, batch_id: str) -> None:
    """Keep the two top-ranked versions (a crash between a publish and this leaves one more; the next run prunes)."""
    for _, path in versions(store, batch_id)[KEEP_VERSIONS:]:
        store.delete_file(path)


def delete_manifest(store: ArchiveStore, batch_id: str) -> None:
    for _, path in versions(store, batch_id):
        store.delete_file(path)


def list_manifests(store: ArchiveStore) -> list[dict]:
    """The readable manifest of every batch (lists the whole folder: status and recovery only; unreadable ones are
    reported by recovery, not here)."""
    by_batch: dict[str, list[tuple[int, int, str]]] = {}
    for path in store.list_files(layout.MANIFEST_DIR):
        parsed = parse_name(path)
        if parsed:
            by_batch.setdefault(parsed[0], []).append((parsed[2], parsed[1], path))
    manifests = []
    for batch_id in sorted(by_batch):
        try:
            found = _choose(store, batch_id, _ranked(by_batch[batch_id]))
        except ManifestUnreadable:
            continue
        if found:
            manifests.append(found)
    return manifests
