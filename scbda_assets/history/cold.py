"""Read the Parquet archive through its public layout only (no Dagster; the archive package is used read-only):

    <root>/<collection>/event_date=YYYY-MM-DD/hour=HH/*.parquet        <root>/_manifests/<batch_id>.json

Only well-formed archived documents (``raw_json`` null) are returned: malformed ones are skipped, as the KPIs skip
them in MongoDB. Several files of one hour may hold the same id (a batch re-run after a crash, a hand-over): the
callers de-duplicate by business id.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scbda_assets.archive import layout, staging
from scbda_assets.archive.storage import ArchiveStore

RAW_COLUMN = "raw_json"


def hour_files(store: ArchiveStore | None, collection: str, hour: dt.datetime) -> list[str]:
    """The hour's committed files, and the staged files of a verified batch (already deleted from MongoDB, not yet
    moved in: without them a KPI would dip between the delete and the commit; staging is listed first)."""
    if store is None:
        return []
    staged = staging.visible_staged_files(store, collection, hour)
    return staged + [path for path in store.list_files(layout.hour_dir(collection, hour)) if path.endswith(".parquet")]


def read_files(store: ArchiveStore, files: list[str], columns: list[str], schema: pa.Schema) -> pa.Table:
    """The well-formed rows of ``files`` with ``columns``, cast to ``schema`` (empty table when none)."""
    tables = []
    for path in files:
        table = pq.read_table(store.path(path), columns=[*columns, RAW_COLUMN], filesystem=store.fs)
        table = table.filter(pc.is_null(table[RAW_COLUMN])).select(columns)
        tables.append(table.cast(schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def earliest_hour(store: ArchiveStore | None, collection: str) -> dt.datetime | None:
    """The oldest hour folder of a collection (an upper bound of its oldest archived event), None if none."""
    if store is None:
        return None
    for date_dir in store.list_dirs(collection):
        if not date_dir.startswith("event_date="):
            continue
        hours = [d for d in store.list_dirs(f"{collection}/{date_dir}") if d.startswith("hour=")]
        for hour_dir in hours:
            if hour_files(store, collection, _hour(date_dir, hour_dir)):
                return _hour(date_dir, hour_dir)
    return None


def manifest_names(store: ArchiveStore | None) -> list[str]:
    if store is None:
        return []
    return [path.rsplit("/", 1)[-1][: -len(".json")] for path in store.list_files(layout.MANIFEST_DIR)
            if path.endswith(".json")]


def read_manifest(store: ArchiveStore, name: str) -> dict | None:
    """A manifest by batch id; None when it vanished (an empty batch removes its own) or is being replaced."""
    import json

    try:
        return json.loads(store.read_text(layout.manifest_file(name)))
    except (FileNotFoundError, OSError, ValueError):
        return None


def partition_hour(partition: str) -> dt.datetime:
    """``event_date=YYYY-MM-DD/hour=HH`` (possibly prefixed by the collection) -> the hour."""
    date_dir, hour_dir = partition.rstrip("/").split("/")[-2:]
    return _hour(date_dir, hour_dir)


def _hour(date_dir: str, hour_dir: str) -> dt.datetime:
    day = dt.date.fromisoformat(date_dir.split("=", 1)[1])
    return dt.datetime(day.year, day.month, day.day, int(hour_dir.split("=", 1)[1]), tzinfo=dt.UTC)
