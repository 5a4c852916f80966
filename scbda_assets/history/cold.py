"""Read the Parquet archive through its public layout only (no Dagster; the archive package is used read-only):

    <root>/<collection>/event_date=YYYY-MM-DD/hour=HH/*.parquet

(Which hours an archive batch touched comes from the manifest catalog, ``archive.catalog``, never from here.)

Only well-formed archived documents (``raw_json`` null) are returned: malformed ones are skipped, as the KPIs skip
them in MongoDB. Several files of one hour may hold the same id (a batch re-run after a crash, a hand-over): the
callers de-duplicate by business id.

A file that is not readable Parquet (truncated, torn, foreign, no read permission) is quarantined
(``archive.quarantine``): moved out of its hour folder and recorded, and the read goes on with the other files, so
one bad file never stops the KPIs.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scbda_assets.archive import layout, quarantine, staging
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
    """The well-formed rows of ``files`` with ``columns``, cast to ``schema`` (empty table when none). A corrupt file
    (twice in a row) is quarantined and left out; one that vanished meanwhile is left out."""
    tables = []
    for path in files:
        table = _read_or_quarantine(store, path, [*columns, RAW_COLUMN])
        if table is not None:
            tables.append(table.filter(pc.is_null(table[RAW_COLUMN])).select(columns).cast(schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _read_or_quarantine(store: ArchiveStore, path: str, columns: list[str]) -> pa.Table | None:
    """A file whose bytes are there but are not Parquet we can read (truncated, torn, foreign), or that this user
    may not read, is quarantined. Any other I/O error (a datanode down, a lost connection) propagates: the run fails
    and is retried, since moving a good file aside would hide its rows."""
    error: BaseException | None = None
    for _ in range(2):  # a second try first: a short read is not a reason to move a file
        try:
            return pq.read_table(store.path(path), columns=columns, filesystem=store.fs)
        except FileNotFoundError:
            return None  # moved meanwhile (another reader quarantined it)
        except (ValueError, PermissionError, pa.ArrowNotImplementedError) as exc:
            error = exc
    if store.exists(path):
        quarantine.quarantine_file(store, path, error)
    return None


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


def earliest_event(store: ArchiveStore | None, collection: str, field: str) -> dt.datetime | None:
    """The oldest archived event time itself (not its hour: ``history_days`` counts from the first order, and the
    hour's start would stretch it by up to an hour), read from the oldest hour's files; None if none."""
    hour = earliest_hour(store, collection)
    if hour is None:
        return None
    schema = pa.schema([(field, pa.timestamp("us", tz="UTC"))])
    table = read_files(store, hour_files(store, collection, hour), [field], schema)
    oldest = pc.min(table[field]).as_py() if table.num_rows else None
    return oldest or hour


def partition_hour(partition: str) -> dt.datetime:
    """``event_date=YYYY-MM-DD/hour=HH`` (possibly prefixed by the collection) -> the hour."""
    date_dir, hour_dir = partition.rstrip("/").split("/")[-2:]
    return _hour(date_dir, hour_dir)


def _hour(date_dir: str, hour_dir: str) -> dt.datetime:
    day = dt.date.fromisoformat(date_dir.split("=", 1)[1])
    return dt.datetime(day.year, day.month, day.day, int(hour_dir.split("=", 1)[1]), tzinfo=dt.UTC)
