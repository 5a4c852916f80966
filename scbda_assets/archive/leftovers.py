"""Temporary files left by a crash are removed (SPEC §8.12): ``write_new_text`` publishes every small file (manifest
versions, ``_incomplete`` markers, quarantine records) through ``<name>.tmp``; a process killed between the write and
the rename leaves that file behind, forever, one per crash.

Only the small-file folders are swept (never the hour folders: Spark's files never take a ``.tmp`` name there), and
only files older than ``MIN_AGE``: a write in progress takes milliseconds, and a writer whose temporary file was
removed under it fails its rename (``FileNotFoundError``) and publishes nothing.
"""

from __future__ import annotations

import datetime as dt

import pyarrow.fs as pafs

from scbda_assets.archive import layout
from scbda_assets.archive.quarantine import QUARANTINE_DIR
from scbda_assets.archive.storage import ArchiveStore

SWEPT_DIRS = (layout.MANIFEST_DIR, QUARANTINE_DIR)
TEMPORARY_SUFFIX = ".tmp"
MIN_AGE = dt.timedelta(minutes=15)


def stray_temporary_files(store: ArchiveStore, *, now: dt.datetime, min_age: dt.timedelta = MIN_AGE) -> list[str]:
    """Relative paths of the ``.tmp`` files of the small-file folders last modified before ``now - min_age``."""
    found = []
    for folder in SWEPT_DIRS:
        selector = pafs.FileSelector(store.path(folder), allow_not_found=True, recursive=True)
        for info in store.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.endswith(TEMPORARY_SUFFIX) and info.mtime \
                    and info.mtime.astimezone(dt.UTC) < now - min_age:
                found.append(info.path[len(store.root_path) + 1:])
    return sorted(found)


def clean_temporary_files(store: ArchiveStore, *, now: dt.datetime, min_age: dt.timedelta = MIN_AGE) -> int:
    """Delete the stray temporary files; returns how many."""
    stray = stray_temporary_files(store, now=now, min_age=min_age)
    for relative in stray:
        store.delete_file(relative)
    return len(stray)
