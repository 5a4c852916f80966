"""The zero-loss archive protocol (SPEC §8): freeze one cutoff, select, write, verify, manifest, delete.

Crash-safety comes from the manifest being the journal (see ``manifest.py``) and from every step being repeatable:

* MongoDB is only touched (delete) once the batch's files are on disk, read back and the manifest says ``verified``;
* a batch's files have the batch id in their name, so a redo first removes that batch's files and never appends
  twice; files from other batches in the same hour folder (late events) are never touched;
* Spark writes into a private staging folder; the files are then moved (renamed) into the hour folders;
* the ids deleted are the ids read back from the batch's files, in chunks, so a re-run after a crash mid-delete
  deletes the rest (deleting an already deleted id is a no-op).

Every run first finishes any batch that an earlier run left incomplete (``recover``), then starts its own.
Archive runs must not overlap (the Dagster run queue allows one ``scbda/stage=archive`` run at a time).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pymongo.database import Database

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.schema import ID_COLUMN, PARTITION_COLUMNS, SPECS, SPECS_BY_COLLECTION, CollectionSpec
from scbda_assets.archive.selection import Selection, decode_id, select
from scbda_assets.archive.storage import ArchiveStore

Checkpoint = Callable[[str], None]  # called after each step: "written", "verified", "manifest", "deleted_chunk"
INCOMPLETE_DIR = f"{layout.MANIFEST_DIR}/_incomplete"
WRITE_VIA = "staged_parquet"  # how Spark gets the selected rows (see _spark_write)
WRITE_CHUNK_ROWS = 500_000  # rows per createDataFrame (bounds what one Connect request carries)
DELETE_CHUNK = 50_000  # ids per delete_many (50 000 ObjectIds ≈ 1 MB of query, far below the 16 MB limit)


class ArchiveVerificationError(RuntimeError):
    """The ids read back from the written files differ from the ids selected; nothing was deleted."""


def _no_checkpoint(step: str) -> None:
    return None


def archive_range(
    db: Database,
    spark,
    store: ArchiveStore,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    safety_minutes: int,
    collections: Iterable[str] = tuple(spec.collection for spec in SPECS),
    checkpoint: Checkpoint = _no_checkpoint,
    delete_chunk: int = DELETE_CHUNK,
) -> dict | None:
    """Archive the eligible documents of [start, end) as one new batch; returns its manifest (None: nothing to do).

    The cutoff is frozen once: ``min(end, hour of (now - safety))``; the same cutoff selects and bounds the delete.
    """
    recover(db, spark, store, checkpoint=checkpoint, delete_chunk=delete_chunk)
    cutoff = min(end, layout.floor_hour(now - dt.timedelta(minutes=safety_minutes)))
    if cutoff <= start:
        return None
    batch_id = layout.new_batch_id(now, uuid.uuid4().hex[:8])
    manifest = mf.new_manifest(batch_id, created_at=now, start=start, cutoff=cutoff, collections=list(collections))
    store.write_text_atomically(f"{INCOMPLETE_DIR}/{batch_id}", batch_id)
    store.write_text_atomically(layout.manifest_file(batch_id), mf.dumps(manifest))
    manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk)
    if mf.totals(manifest)["record_count"] == 0:
        # An empty batch leaves no trace (no files were written for it).
        store.delete_file(layout.manifest_file(batch_id))
        return None
    return manifest


def recover(db: Database, spark, store: ArchiveStore, *, checkpoint: Checkpoint = _no_checkpoint,
            delete_chunk: int = DELETE_CHUNK) -> list[dict]:
    """Finish every batch an earlier (crashed) run left incomplete, oldest first."""
    finished = []
    for marker in store.list_files(INCOMPLETE_DIR):
        batch_id = marker.rsplit("/", 1)[-1]
        if not layout.is_batch_id(batch_id):
            continue
        if not store.exists(layout.manifest_file(batch_id)):
            # Crashed before its pending manifest: nothing was written for it.
            store.delete_file(marker)
            continue
        manifest = mf.loads(store.read_text(layout.manifest_file(batch_id)))
        manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk)
        finished.append(manifest)
    return finished


def run_batch(db: Database, spark, store: ArchiveStore, manifest: dict, *, checkpoint: Checkpoint = _no_checkpoint,
              delete_chunk: int = DELETE_CHUNK) -> dict:
    """Take one batch from whatever status it is in to ``complete``."""
    batch_id = manifest["batch_id"]
    start, cutoff = mf.parse_iso(manifest["start"]), mf.parse_iso(manifest["cutoff"])
    verified_ids: dict[str, pa.Array] = {}
    timings = manifest.setdefault("timings_s", {})
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    if manifest["status"] == mf.PENDING:
        selections = {}
        for name in manifest["collections"]:
            spec = SPECS_BY_COLLECTION[name]
            selections[name] = selection = select(db, spec, start, cutoff, cutoff)
            lap("select")
            manifest["collections"][name] = _write(spark, store, spec, batch_id, selection, start, cutoff)
            lap("write")
        checkpoint("written")
        for name, selection in selections.items():
            verified_ids[name] = _verify(spark, store, manifest["collections"][name]["files"],
                                         selection.table[ID_COLUMN], name)
        lap("verify")
        checkpoint("verified")
        manifest["status"] = mf.VERIFIED
        store.write_text_atomically(layout.manifest_file(batch_id), mf.dumps(manifest))
        checkpoint("manifest")
    if manifest["status"] == mf.VERIFIED:
        for name, entry in manifest["collections"].items():
            ids = verified_ids[name] if name in verified_ids else read_ids(spark, store, entry["files"])
            entry["deleted_count"] = _delete(db[name], ids, checkpoint, delete_chunk)
        lap("delete")
        manifest["status"] = mf.COMPLETE
        store.write_text_atomically(layout.manifest_file(batch_id), mf.dumps(manifest))
    store.delete_dir(layout.staging_dir(batch_id))
    store.delete_file(f"{INCOMPLETE_DIR}/{batch_id}")
    return manifest


def _write(spark, store: ArchiveStore, spec: CollectionSpec, batch_id: str, selection: Selection,
           start: dt.datetime, cutoff: dt.datetime) -> dict:
    """Spark writes the selection into staging; its files then replace this batch's files in the hour folders."""
    staging = layout.staging_dir(batch_id, spec.collection)
    store.delete_dir(staging)
    table = selection.table
    if table.num_rows:
        _spark_write(spark, store, spec, table, staging, input_file=f"{layout.staging_dir(batch_id)}/_input/"
                     f"{spec.collection}.parquet")
    _remove_batch_files(store, spec.collection, batch_id, start, cutoff)
    files, sequence = [], {}
    for staged in store.list_files(staging, prefix="part-", recursive=True):
        if not staged.endswith(".parquet"):
            continue
        partition = staged[len(staging) + 1 :].rsplit("/", 1)[0]
        sequence[partition] = sequence.get(partition, -1) + 1
        target = layout.part_file(spec.collection, partition, batch_id, sequence[partition])
        store.move(staged, target)
        files.append(target)
    store.delete_dir(staging)
    events = table[spec.event_field]
    return mf.collection_entry(
        record_count=table.num_rows,
        malformed_count=selection.malformed_count,
        min_event_ts=pc.min(events).as_py() if table.num_rows else None,
        max_event_ts=pc.max(events).as_py() if table.num_rows else None,
        partitions=sorted(sequence),
        files=sorted(files),
        bytes_written=sum(store.size(path) for path in files),
        source_bytes=selection.source_bytes,
    )


def _spark_write(spark, store: ArchiveStore, spec: CollectionSpec, table: pa.Table, staging: str, *,
                 input_file: str, via: str | None = None) -> None:
    """Spark writes ``table`` into ``staging/event_date=…/hour=…/`` (explicit schema, snappy, one file per hour).

    ``staged_parquet`` (default): pyarrow writes the table once as an uncompressed Parquet ``input_file`` in the
    batch's staging folder and Spark reads it (in parallel, no Arrow over the Connect channel); ``arrow``: Spark
    ingests the Arrow table client-side (``createDataFrame``) in chunks of WRITE_CHUNK_ROWS (a file per hour per
    chunk).
    """
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    via = via or WRITE_VIA
    if via == "staged_parquet":
        store.fs.create_dir(store.path(input_file).rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, store.path(input_file), filesystem=store.fs, compression="none",
                       row_group_size=WRITE_CHUNK_ROWS // 4)
        frames = [spark.read.schema(spec.spark_ddl()).parquet(store.uri(input_file))]
    elif via == "arrow":
        frames = [spark.createDataFrame(table.slice(offset, WRITE_CHUNK_ROWS), schema=spec.spark_ddl())
                  for offset in range(0, table.num_rows, WRITE_CHUNK_ROWS)]
    else:
        raise ValueError(f"unknown write path {via!r}: accepted staged_parquet, arrow")
    for frame in frames:
        (frame.repartition(*PARTITION_COLUMNS).write.mode("append").partitionBy(*PARTITION_COLUMNS)
         .option("compression", "snappy").parquet(store.uri(staging)))
    if via == "staged_parquet":
        store.delete_file(input_file)


def _remove_batch_files(store: ArchiveStore, collection: str, batch_id: str, start: dt.datetime,
                        cutoff: dt.datetime) -> None:
    """Files a crashed attempt of this batch published (a batch's files only live in hours of its range)."""
    days = sorted({f"{hour:%Y-%m-%d}" for hour in layout.hours_between(start, cutoff)})
    for day in days:
        for path in store.list_files(f"{collection}/event_date={day}", prefix=layout.part_prefix(batch_id),
                                     recursive=True):
            store.delete_file(path)


def read_ids(spark, store: ArchiveStore, files: list[str]) -> pa.Array:
    if not files:
        return pa.array([], pa.string())
    frame = spark.read.schema(f"`{ID_COLUMN}` STRING").parquet(*(store.uri(path) for path in files))
    return frame.toArrow()[ID_COLUMN].combine_chunks()


def _verify(spark, store: ArchiveStore, files: list[str], selected: pa.ChunkedArray, name: str) -> pa.Array:
    written = read_ids(spark, store, files)
    selected = selected.combine_chunks()
    unique_written = len(pc.unique(written))
    missing = len(selected) - pc.sum(pc.is_in(selected, value_set=written)).as_py() if len(selected) else 0
    if len(written) != len(selected) or unique_written != len(written) or missing:
        raise ArchiveVerificationError(
            f"{name}: read back {len(written)} ids ({unique_written} distinct), selected {len(selected)}, "
            f"{missing} selected ids missing from the files; nothing deleted"
        )
    return written


def _delete(collection, ids: pa.Array, checkpoint: Checkpoint, chunk: int) -> int:
    deleted = 0
    values = ids.to_pylist()
    for offset in range(0, len(values), chunk):
        batch = [decode_id(text) for text in values[offset : offset + chunk]]
        deleted += collection.delete_many({"_id": {"$in": batch}}).deleted_count
        checkpoint("deleted_chunk")
    return deleted


def list_manifests(store: ArchiveStore) -> list[dict]:
    return [mf.loads(store.read_text(path)) for path in store.list_files(layout.MANIFEST_DIR)
            if path.endswith(".json")]
