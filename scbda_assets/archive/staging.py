"""Staging an archive batch: the selected documents into uncompressed Parquet, Spark's write into the attempt's
private staging folder, and — once MongoDB has deleted them — the commit that moves the files into the hour folders
(SPEC §8 steps 1-2, §8.13: a reader of the hour folders sees a batch's rows only once they left MongoDB).

Nothing here decides *when* (the protocol does, under the fenced lease). Every attempt has its own staging folder
and file names (the lease epoch), so a redo never touches another attempt's files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pymongo.database import Database

from scbda_assets.archive import layout
from scbda_assets.archive.reader import select_chunks, split_range
from scbda_assets.archive.schema import ID_COLUMN, PARTITION_COLUMNS, CollectionSpec
from scbda_assets.archive.storage import ArchiveStore

SELECT_STREAMS = 2  # MongoDB cursors per collection, on consecutive time slices (see stage_selection)
STAGED_ROW_GROUP = 125_000  # rows per row group of the staging input (Spark splits its read along them)


@dataclasses.dataclass
class Staged:
    """What a selection left in the staging input: counts for the manifest, and the ids selected."""

    ids: pa.Array
    records: int
    malformed: int
    source_bytes: int
    event_times: list  # min and max of each chunk


def stage_selection(db: Database, store: ArchiveStore, spec: CollectionSpec, start: dt.datetime,
                    cutoff: dt.datetime, input_dir: str, streams: int | None = None,
                    min_slice_documents: int = 100_000, exclude_business_ids: frozenset[str] = frozenset()) -> Staged:
    """Select [start, cutoff) from MongoDB into uncompressed Parquet files under ``input_dir``, one per slice of
    the range, ``streams`` slices at a time (default SELECT_STREAMS; a slice holds at least ``min_slice_documents``).

    Uncompressed Parquet that Spark reads in parallel, with no Arrow over the Connect channel (3.5x faster than
    ``createDataFrame`` here). Two cursors on two time slices overlap mongod's work (fetch, ``$jsonSchema``) with
    the client's BSON → Arrow decoding, which holds the GIL (one cursor alternates between them).
    """
    slices = split_range(db, spec, start, cutoff, cutoff, streams or SELECT_STREAMS, min_documents=min_slice_documents)
    store.create_dir(input_dir)

    def stage(index: int) -> Staged:
        """Write one slice, keeping each chunk's ids and figures, not its rows."""
        ids, records, malformed, source_bytes, event_times = [], 0, 0, 0, []
        path = store.path(f"{input_dir}/slice-{index:03d}.parquet")
        with pq.ParquetWriter(path, spec.arrow_schema(), filesystem=store.fs, compression="none") as writer:
            for chunk in select_chunks(db, spec, *slices[index], cutoff, exclude_business_ids=exclude_business_ids):
                writer.write_table(chunk.table, row_group_size=STAGED_ROW_GROUP)
                ids.append(chunk.table[ID_COLUMN])
                records, malformed = records + chunk.record_count, malformed + chunk.malformed_count
                source_bytes += chunk.source_bytes
                event_times += [v.as_py() for v in pc.min_max(chunk.table[spec.event_field]).values() if v.is_valid]
        return Staged(pa.chunked_array(ids, pa.string()).combine_chunks(), records, malformed, source_bytes,
                      event_times)

    with ThreadPoolExecutor(len(slices)) as pool:
        parts = list(pool.map(stage, range(len(slices))))
    return Staged(ids=pa.concat_arrays([part.ids for part in parts]),
                  records=sum(part.records for part in parts), malformed=sum(part.malformed for part in parts),
                  source_bytes=sum(part.source_bytes for part in parts),
                  event_times=[moment for part in parts for moment in part.event_times])


def spark_write(spark, store: ArchiveStore, spec: CollectionSpec, input_dir: str, staging: str) -> None:
    """Spark reads the staged input with the explicit schema and writes ``staging/event_date=…/hour=…/`` (snappy).

    No shuffle: each input file is in event-time order (the index order of the select), so each task's planned
    local sort by hour is cheap and an hour gets one file per input split it spans.
    """
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    (spark.read.schema(spec.spark_ddl()).parquet(store.uri(input_dir))
     .write.mode("append").partitionBy(*PARTITION_COLUMNS).option("compression", "snappy")
     .parquet(store.uri(staging)))


def staged_parts(store: ArchiveStore, collection: str, batch_id: str, epoch: int,
                 staging: str) -> tuple[list[str], list[str], list[str]]:
    """Spark's files in this attempt's ``staging`` folder and the names they get in the hour folders at commit
    (``layout.attempt_part_file``); returns (staged, final, partitions), staged[i] → final[i]."""
    staged, final, partitions = [], [], set()
    for spark_file in store.list_files(staging, prefix="part-", recursive=True):
        if not spark_file.endswith(".parquet"):
            continue
        partition, name = spark_file[len(staging) + 1 :].rsplit("/", 1)
        partitions.add(partition)
        staged.append(spark_file)
        final.append(layout.attempt_part_file(collection, partition, batch_id, epoch, name))
    return staged, final, sorted(partitions)


def committed_parts(store: ArchiveStore, collection: str, batch_id: str, epoch: int, start: dt.datetime,
                    cutoff: dt.datetime) -> list[str]:
    """Files an interrupted commit of attempt ``epoch`` already moved into the hour folders (a batch's files only
    live in days of its range; the day folders that exist are listed, not every day of a range from year 1)."""
    first, last = f"event_date={start.date().isoformat()}", f"event_date={cutoff.date().isoformat()}"
    found = []
    for day in store.list_dirs(collection):
        if first <= day <= last:
            found += store.list_files(f"{collection}/{day}", prefix=layout.attempt_part_prefix(batch_id, epoch),
                                      recursive=True)
    return found


class CommitError(RuntimeError):
    """A file a verified manifest lists is neither in staging nor in its hour folder; nothing more was moved."""


def commit(store: ArchiveStore, staged: list[str], final: list[str]) -> None:
    """The commit step: move each staged file to its final name (idempotent: a file already moved is skipped; a
    crash between the link and the unlink of a local move leaves both, and the staged copy is dropped)."""
    for source, target in zip(staged, final, strict=True):
        if source == target and store.exists(target):
            continue  # a manifest from before staged commits: its files were published already
        if store.exists(target):
            store.delete_file(source)
        elif store.exists(source):
            store.move(source, target)
        else:
            raise CommitError(f"archive file {source} (to become {target}) is missing; the batch stays verified")
    store.make_durable(final)


def remove_orphans(store: ArchiveStore, collection: str, batch_id: str, partitions: list[str],
                   keep: list[str]) -> list[str]:
    """Files of this batch in its hour folders that its complete manifest does not list (an attempt fenced off
    mid-commit); returns what was removed."""
    kept, removed = set(keep), []
    for partition in partitions:
        for path in store.list_files(f"{collection}/{partition}", prefix=layout.part_prefix(batch_id)):
            if path not in kept:
                store.delete_file(path)
                removed.append(path)
    return removed


def visible_staged_files(store: ArchiveStore, collection: str, hour: dt.datetime) -> list[str]:
    """Files of ``hour`` that a ``verified`` batch holds in staging: its rows may already be deleted from MongoDB
    and not yet moved into the hour folder, so the project's readers read them from here (list this before the hour
    folder: a file moved in between is then seen twice, never missed; readers de-duplicate by id)."""
    from scbda_assets.archive import manifest_store  # manifest_store → layout only; imported late to stay light

    found = []
    folder = layout.hour_dir(collection, hour)
    for batch_id in store.list_dirs(layout.STAGING_DIR):
        if not layout.is_batch_id(batch_id):
            continue
        try:
            manifest = manifest_store.read_manifest(store, batch_id)
        except manifest_store.ManifestUnreadable:
            continue
        if not manifest or manifest["status"] != "verified":
            continue
        entry = manifest["collections"].get(collection) or {}
        for source, target in zip(entry.get("staged", []), entry.get("files", [])):
            if target.rsplit("/", 1)[0] == folder and store.exists(source):
                found.append(source)
    return found
