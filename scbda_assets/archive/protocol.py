"""The zero-loss archive protocol (SPEC §8): freeze one cutoff, select, write, verify, manifest, delete.

Crash-safety comes from the manifest being the journal (see ``manifest.py``) and from every step being repeatable:

* MongoDB is only touched (delete) once the batch's files are on disk, read back and the manifest says ``verified``;
* a batch's files have the batch id in their name, so a redo first removes that batch's files and never appends
  twice; files from other batches in the same hour folder (late events) are never touched;
* Spark writes into a private staging folder; the files are then moved (renamed) into the hour folders
  (``staging.py``);
* the ids deleted are the ids read back from the batch's files, in chunks, so a re-run after a crash mid-delete
  deletes the rest (deleting an already deleted id is a no-op).

Every run first finishes any batch that an earlier run left incomplete (``recover``), then starts its own.
One writer at a time, whoever starts it (SPEC §8.7): every entry point holds the archive lease (``lease.py``) for the
whole run, and checks it is still held before each irreversible step; only the lease holder recovers, so only a batch
whose writer's lease expired is taken over.

Nothing a writer may still write again is archived (SPEC §8.9): the cutoff is also bounded by the generator's
committed clock (facts at or after it may be re-inserted by a resumed backfill), and documents whose business id is
still in ``generator_pending`` (a late event released by an interval that did not commit yet) stay in MongoDB.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
from pymongo.database import Database

from scbda_assets.archive import catalog, layout, staging
from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.catalog import read_ids
from scbda_assets.archive.lease import ArchiveLease, new_owner
from scbda_assets.archive.reader import decode_id
from scbda_assets.archive.schema import SPECS, SPECS_BY_COLLECTION, CollectionSpec
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.timeutil import floor_hour, parse_iso

Checkpoint = Callable[[str], None]  # called after each step: "written", "verified", "manifest", "deleted_chunk"
INCOMPLETE_DIR = f"{layout.MANIFEST_DIR}/_incomplete"
DELETE_CHUNK = 50_000  # ids per delete_many (50 000 ObjectIds ≈ 1 MB of query, far below the 16 MB limit)
DELETE_THREADS = 2


class ArchiveVerificationError(RuntimeError):
    """The ids read back from the written files differ from the ids selected; nothing was deleted."""


def _no_checkpoint(step: str) -> None:
    return None


class _Held:
    """The caller's lease, or a lease of our own for the duration of the call (every writer holds one)."""

    def __init__(self, db: Database, lease: ArchiveLease | None, kind: str):
        self.lease, self.own = lease, None
        if lease is None:
            self.own = ArchiveLease(db, new_owner(kind))

    def __enter__(self) -> ArchiveLease:
        if self.own is not None:
            return self.own.acquire()
        self.lease.ensure_held()
        return self.lease

    def __exit__(self, *exc) -> None:
        if self.own is not None:
            self.own.release()


def writer_clock(db: Database) -> dt.datetime | None:
    """The generator's committed clock (``generator_state.as_of``): facts at or after it may be written again."""
    doc = db["generator_state"].find_one({"_id": "simulation"}, {"as_of": 1})
    moment = (doc or {}).get("as_of")
    if not isinstance(moment, dt.datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def pending_business_ids(db: Database) -> frozenset[str]:
    """Business ids of late events the generator may still (re-)insert: archiving them could duplicate them."""
    return frozenset(str(doc["_id"]) for doc in db["generator_pending"].find({}, {"_id": 1}))


def frozen_cutoff(db: Database, *, end: dt.datetime, now: dt.datetime, safety_minutes: int) -> dt.datetime:
    """min(end, hour of (now − safety), generator's committed clock)."""
    cutoff = min(end, floor_hour(now - dt.timedelta(minutes=safety_minutes)))
    clock = writer_clock(db)
    return cutoff if clock is None else min(cutoff, clock)


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
    lease: ArchiveLease | None = None,
) -> dict | None:
    """Archive the eligible documents of [start, end) as one new batch; returns its manifest (None: nothing to do).

    Holds the archive lease (the caller's, else its own: ArchiveBusy if another writer has it). The cutoff is frozen
    once (``frozen_cutoff``); the same cutoff selects and bounds the delete.
    """
    with _Held(db, lease, "archive_range") as lease:
        recover(db, spark, store, checkpoint=checkpoint, delete_chunk=delete_chunk, lease=lease)
        cutoff = frozen_cutoff(db, end=end, now=now, safety_minutes=safety_minutes)
        if cutoff <= start:
            return None
        batch_id = layout.new_batch_id(now, uuid.uuid4().hex[:8])
        manifest = mf.new_manifest(batch_id, created_at=now, start=start, cutoff=cutoff,
                                   collections=list(collections))
        lease.ensure_held()
        store.ensure_text(f"{INCOMPLETE_DIR}/{batch_id}", batch_id)
        manifest_store.write_manifest(store, manifest)
        catalog.record(db, store, manifest)
        manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk,
                             lease=lease)
        if mf.totals(manifest)["record_count"] == 0:
            # An empty batch leaves no trace (no files were written for it).
            manifest_store.delete_manifest(store, batch_id)
            catalog.forget(db, batch_id)
            return None
        return manifest


def recover(db: Database, spark, store: ArchiveStore, *, checkpoint: Checkpoint = _no_checkpoint,
            delete_chunk: int = DELETE_CHUNK, lease: ArchiveLease | None = None) -> list[dict]:
    """Finish every batch an earlier (crashed) run left incomplete, oldest first — under the archive lease, so the
    writer that left it is gone (its lease expired) or was this very process."""
    finished = []
    with _Held(db, lease, "recovery") as lease:
        for marker in store.list_files(INCOMPLETE_DIR):
            batch_id = marker.rsplit("/", 1)[-1]
            if not layout.is_batch_id(batch_id):
                continue
            manifest = manifest_store.read_manifest(store, batch_id)
            lease.ensure_held()
            if manifest is None:
                # Crashed before its pending manifest: nothing was written for it.
                store.delete_file(marker)
                continue
            manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk,
                                 lease=lease)
            finished.append(manifest)
    return finished


def run_batch(db: Database, spark, store: ArchiveStore, manifest: dict, *, checkpoint: Checkpoint = _no_checkpoint,
              delete_chunk: int = DELETE_CHUNK, lease: ArchiveLease | None = None) -> dict:
    """Take one batch from whatever status it is in to ``complete`` (under the archive lease)."""
    with _Held(db, lease, "run_batch") as lease:
        return _run_batch(db, spark, store, manifest, checkpoint, delete_chunk, lease)


def _run_batch(db: Database, spark, store: ArchiveStore, manifest: dict, checkpoint: Checkpoint, delete_chunk: int,
               lease: ArchiveLease) -> dict:
    batch_id = manifest["batch_id"]
    start, cutoff = parse_iso(manifest["start"]), parse_iso(manifest["cutoff"])
    verified_ids: dict[str, pa.Array] = {}
    timings = manifest.setdefault("timings_s", {})
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    if manifest["status"] == mf.PENDING:
        selected_ids = {}
        pending = pending_business_ids(db)
        for name in manifest["collections"]:
            spec = SPECS_BY_COLLECTION[name]
            manifest["collections"][name], selected_ids[name] = _write(db, spark, store, spec, batch_id, start,
                                                                       cutoff, lap, lease, pending)
        checkpoint("written")
        for name in list(selected_ids):
            verified_ids[name] = _verify(store, manifest["collections"][name]["files"], selected_ids.pop(name), name)
        lap("verify")
        checkpoint("verified")
        manifest["status"] = mf.VERIFIED
        lease.ensure_held()
        manifest_store.write_manifest(store, manifest)
        catalog.record(db, store, manifest)
        checkpoint("manifest")
    if manifest["status"] == mf.VERIFIED:
        for name, entry in manifest["collections"].items():
            ids = verified_ids[name] if name in verified_ids else read_ids(store, entry["files"])
            entry["deleted_count"] = _delete(db[name], ids, checkpoint, delete_chunk, lease)
        lap("delete")
        manifest["status"] = mf.COMPLETE
        lease.ensure_held()
        manifest_store.write_manifest(store, manifest)
        catalog.record(db, store, manifest)
    store.delete_dir(layout.staging_dir(batch_id))
    manifest_store.prune_older(store, batch_id)
    store.delete_file(f"{INCOMPLETE_DIR}/{batch_id}")
    return manifest


def _write(db: Database, spark, store: ArchiveStore, spec: CollectionSpec, batch_id: str, start: dt.datetime,
           cutoff: dt.datetime, lap: Callable[[str], None], lease: ArchiveLease,
           pending: frozenset[str] = frozenset()) -> tuple[dict, pa.Array]:
    """Select the collection's documents of [start, cutoff) chunk by chunk into the batch's staging input (memory
    stays bounded), have Spark write them, then publish Spark's files in place of this batch's files in the hour
    folders. Returns the manifest entry and the ids selected."""
    staging_folder = layout.staging_dir(batch_id, spec.collection)
    input_dir = layout.staging_input(batch_id, spec.collection)
    lease.ensure_held()
    store.delete_dir(staging_folder)
    staged = staging.stage_selection(db, store, spec, start, cutoff, input_dir, exclude_business_ids=pending)
    lap("select")
    if staged.records:
        staging.spark_write(spark, store, spec, input_dir, staging_folder)
    store.delete_dir(input_dir)
    lease.ensure_held()
    staging.remove_batch_files(store, spec.collection, batch_id, start, cutoff)
    files, partitions = staging.publish(store, spec.collection, batch_id, staging_folder)
    lap("write")
    entry = mf.collection_entry(
        record_count=staged.records,
        malformed_count=staged.malformed,
        min_event_ts=min(staged.event_times, default=None),
        max_event_ts=max(staged.event_times, default=None),
        partitions=partitions,
        files=files,
        bytes_written=sum(store.size(path) for path in files),
        source_bytes=staged.source_bytes,
    )
    return entry, staged.ids












def _verify(store: ArchiveStore, files: list[str], selected: pa.Array, name: str) -> pa.Array:
    written = read_ids(store, files)
    unique_written = len(pc.unique(written))
    missing = len(selected) - pc.sum(pc.is_in(selected, value_set=written)).as_py() if len(selected) else 0
    if len(written) != len(selected) or unique_written != len(written) or missing:
        raise ArchiveVerificationError(
            f"{name}: read back {len(written)} ids ({unique_written} distinct), selected {len(selected)}, "
            f"{missing} selected ids missing from the files; nothing deleted"
        )
    return written


def _delete(collection, ids: pa.Array, checkpoint: Checkpoint, chunk: int, lease: ArchiveLease) -> int:
    """Delete the ids in chunks, DELETE_THREADS at a time (mongod removes documents and index entries on both
    cores); after a failure (or a lost lease) no further chunk starts."""
    def delete_chunk(offset: int) -> int:
        lease.ensure_held()
        batch = [decode_id(text) for text in ids.slice(offset, chunk).to_pylist()]
        deleted = collection.delete_many({"_id": {"$in": batch}}).deleted_count
        checkpoint("deleted_chunk")
        return deleted

    with ThreadPoolExecutor(DELETE_THREADS) as pool:
        futures = [pool.submit(delete_chunk, offset) for offset in range(0, len(ids), chunk)]
        try:
            return sum(future.result() for future in futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


