"""The zero-loss archive protocol (SPEC §8): freeze one cutoff, select, write, verify, manifest, delete, commit.

Crash-safety comes from the manifest being the journal (see ``manifest.py``) and from every step being repeatable;
safety against a writer that resumes after losing its lease comes from fencing (``lease.fence()``, the epoch):

* an attempt (one lease epoch) writes only under names of its own: ``_staging/<batch>/e<epoch>/`` and final names
  ``part-<batch>-e<epoch>-NNNNN``; a redo never removes another attempt's files;
* the files stay in staging through write → verify → ``verified`` manifest (listing staged and final names, flushed
  first) → MongoDB delete (journaled, in chunks, fenced per chunk); only then the commit moves them into the hour
  folders and the manifest says ``complete`` — a reader of the hour folders never sees rows still in MongoDB;
* every irreversible step (manifest version, delete chunk, commit, clean-up) is preceded by ``fence()``; manifest
  versions carry the epoch and rank by it, so a fenced-off writer's late version never outranks the current one;
* the ids deleted are the ids read back from the batch's files, so a redo deletes the rest (no-op for the others).

Every run first finishes the batches earlier runs left incomplete (``recover``). A batch that cannot be finished
(unreadable manifest, a verification mismatch, a missing file) keeps its marker, is counted, parked after
``stuck.PARK_AFTER`` failures, and its window is skipped by new batches while other hours keep archiving.

Nothing a writer may still write again is archived (SPEC §8.9): the cutoff is also bounded by the generator's
committed clock, and documents whose business id is still in ``generator_pending`` stay in MongoDB.
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

from scbda_assets.archive import catalog, layout, staging, stuck
from scbda_assets.archive import manifest as mf
from scbda_assets.archive import manifest_store
from scbda_assets.archive.catalog import read_ids
from scbda_assets.archive.lease import ArchiveBusy, ArchiveLease, LeaseLost, durable, new_owner
from scbda_assets.archive.manifest_store import ManifestUnreadable
from scbda_assets.archive.reader import decode_id
from scbda_assets.archive.schema import ID_COLUMN, SPECS, SPECS_BY_COLLECTION, CollectionSpec
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.errors import first_line
from scbda_assets.timeutil import floor_hour, parse_iso

# called after each step: "opened", "written", "verified", "manifest", "deleted_chunk", "deleted", "committed",
# "complete"
Checkpoint = Callable[[str], None]
INCOMPLETE_DIR = f"{layout.MANIFEST_DIR}/_incomplete"
DELETE_CHUNK = 50_000  # ids per delete_many (50 000 ObjectIds ≈ 1 MB of query, far below the 16 MB limit)
DELETE_THREADS = 2


class ArchiveVerificationError(RuntimeError):
    """The ids read back from the written files differ from the ids selected; nothing was deleted."""


class RecoveryFailed(RuntimeError):
    """Some incomplete batch could not be finished this time (counted; requested again; parked after a few)."""


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
        self.lease.fence()
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
    log: Callable[[str], None] | None = None,
) -> dict | None:
    """Archive the eligible documents of [start, end) as one new batch; returns its manifest (None: nothing to do).

    Holds the archive lease (the caller's, else its own: ArchiveBusy if another writer has it). The cutoff is frozen
    once (``frozen_cutoff``); the same cutoff selects and bounds the delete.
    """
    with _Held(db, lease, "archive_range") as lease:
        recover(db, spark, store, checkpoint=checkpoint, delete_chunk=delete_chunk, lease=lease, log=log)
        cutoff = frozen_cutoff(db, end=end, now=now, safety_minutes=safety_minutes)
        window = outside_blocked(start, cutoff, stuck.blocked_windows(db, store))
        if window is None:
            return None
        start, cutoff = window
        batch_id = layout.new_batch_id(now, uuid.uuid4().hex[:8])
        manifest = mf.new_manifest(batch_id, created_at=now, start=start, cutoff=cutoff,
                                   collections=list(collections))
        lease.fence()
        store.ensure_text(f"{INCOMPLETE_DIR}/{batch_id}", batch_id)
        manifest_store.write_manifest(store, manifest, lease.epoch)
        catalog.record(durable(db), store, manifest)
        checkpoint("opened")
        manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk,
                             lease=lease)
        if mf.totals(manifest)["record_count"] == 0:
            # An empty batch leaves no trace (no files were written for it).
            lease.fence()
            manifest_store.delete_manifest(store, batch_id)
            catalog.forget(db, batch_id)
            return None
        return manifest


def outside_blocked(start: dt.datetime, cutoff: dt.datetime,
                    blocked: list[tuple[dt.datetime, dt.datetime] | None]) -> tuple[dt.datetime, dt.datetime] | None:
    """[start, cutoff) narrowed to one range that overlaps no blocked window (a batch being retried or parked: its
    ids must not go into a second batch); None when nothing is left or a blocked window is unknown."""
    for window in sorted(blocked, key=lambda w: (w is not None, w)):
        if window is None:
            return None
        low, high = window
        if low < cutoff and start < high:
            if low <= start:
                start = high
            else:
                cutoff = low
    return (start, cutoff) if start < cutoff else None


def recover(db: Database, spark, store: ArchiveStore, *, checkpoint: Checkpoint = _no_checkpoint,
            delete_chunk: int = DELETE_CHUNK, lease: ArchiveLease | None = None, log=None) -> list[dict]:
    """Finish every batch an earlier run left incomplete, oldest first — under the archive lease, so the writer that
    left it is gone (its lease expired, or its process is gone) or was this very process.

    A batch that fails is counted (``stuck``) and the others are still tried; parked batches are skipped. Raises
    RecoveryFailed at the end when a batch failed that is not parked yet (the run fails and is requested again)."""
    finished, failed = [], []
    log = log or (lambda line: None)
    with _Held(db, lease, "recovery") as lease:
        parked = stuck.parked_ids(db, store)
        _remove_unreferenced_staging(store, lease)
        for marker in store.list_files(INCOMPLETE_DIR):
            batch_id = marker.rsplit("/", 1)[-1]
            if not layout.is_batch_id(batch_id) or batch_id in parked:
                continue
            try:
                manifest = manifest_store.read_manifest(store, batch_id)
                lease.fence()
                if manifest is None:
                    _abandon(db, store, batch_id, "crashed before its pending manifest: nothing was written for it",
                             log)
                    continue
                manifest = run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk,
                                     lease=lease)
            except (ArchiveBusy, LeaseLost):
                raise
            except ManifestUnreadable as exc:
                if exc.abandonable:  # only version 0 (pending) ever existed: nothing deleted, nothing committed
                    lease.fence()
                    _abandon(db, store, batch_id, f"{exc}; it never reached verified", log)
                    continue
                try:
                    manifest = _finish_rebuilt(db, spark, store, batch_id, checkpoint, delete_chunk, lease)
                except (ArchiveBusy, LeaseLost):
                    raise
                except Exception as again:
                    failed.append(_failed(db, store, batch_id, again, log))
                    continue
                if manifest is None:
                    failed.append(_failed(db, store, batch_id, exc, log))
                    continue
            except Exception as exc:  # a poison batch: counted, retried, parked; the other batches go on
                failed.append(_failed(db, store, batch_id, exc, log))
                continue
            stuck.clear(db, batch_id)
            finished.append(manifest)
    retry = [record for record in failed if not record["parked"]]
    if retry:
        raise RecoveryFailed("; ".join(f"batch {r['_id']} not finished (attempt {r['failures']} of "
                                       f"{stuck.PARK_AFTER}): {r['last_error']}" for r in retry))
    return finished


def _finish_rebuilt(db: Database, spark, store: ArchiveStore, batch_id: str, checkpoint: Checkpoint,
                    delete_chunk: int, lease: ArchiveLease) -> dict | None:
    """An unreadable ``verified`` over a readable ``pending``: rebuilt from the attempt's own files, then finished."""
    manifest = rebuild_verified(store, batch_id)
    if manifest is None:
        return None
    lease.fence()
    manifest_store.write_manifest(store, manifest, lease.epoch)
    catalog.record(durable(db), store, manifest)
    return run_batch(db, spark, store, manifest, checkpoint=checkpoint, delete_chunk=delete_chunk, lease=lease)


def rebuild_verified(store: ArchiveStore, batch_id: str) -> dict | None:
    """The ``verified`` manifest of a batch whose newest version cannot be read, rebuilt from what is certain: the
    readable ``pending`` version before it (range, cutoff, collections) and the files of the attempt that wrote the
    unreadable version (its epoch is in its name) — still staged, or already moved by an interrupted commit.

    Sound because a version >= 1 is never ``pending`` and is published (durably, under a new name) only after that
    attempt's files were verified, and nothing but the commit changes an attempt's files afterwards. None when the
    versions do not have that shape (then the batch is retried and reported)."""
    candidates = manifest_store.versions(store, batch_id)
    if len(candidates) < 2:
        return None
    top_seq, top_path = candidates[0]
    epoch = manifest_store.parse_name(top_path)[2]
    try:
        pending = mf.loads(store.read_text(candidates[1][1]))
    except (ValueError, OSError, KeyError, UnicodeDecodeError):
        return None
    if top_seq == 0 or epoch == 0 or pending["status"] != mf.PENDING:
        return None
    start, cutoff = parse_iso(pending["start"]), parse_iso(pending["cutoff"])
    manifest = {**pending, "status": mf.VERIFIED, "rebuilt_from": top_path, "collections": {}}
    for name in pending["collections"]:
        spec = SPECS_BY_COLLECTION[name]
        staged, final, _ = staging.staged_parts(store, name, batch_id, epoch, layout.attempt_dir(batch_id, epoch, name))
        where = dict(zip(final, staged))
        for path in staging.committed_parts(store, name, batch_id, epoch, start, cutoff):
            where.setdefault(path, path)
        files = sorted(where)
        sources = [where[path] for path in files]
        table = _read_columns(store, sources, [ID_COLUMN, spec.event_field, "raw_json"])
        ids = table[ID_COLUMN].combine_chunks() if table.num_rows else pa.array([], pa.string())
        if len(pc.unique(ids)) != len(ids):
            raise ArchiveVerificationError(f"{name}: the files of attempt e{epoch} hold an id twice; nothing deleted")
        times = [v.as_py() for v in pc.min_max(table[spec.event_field]).values() if v.is_valid] if table.num_rows \
            else []
        manifest["collections"][name] = {
            **mf.collection_entry(
                record_count=table.num_rows,
                malformed_count=table.num_rows - table["raw_json"].null_count if table.num_rows else 0,
                min_event_ts=min(times, default=None), max_event_ts=max(times, default=None),
                partitions=sorted({path.split("/", 1)[1].rsplit("/", 1)[0] for path in files}), files=files,
                bytes_written=sum(store.size(path) for path in sources), source_bytes=0),
            "staged": sources}
    return manifest


def _read_columns(store: ArchiveStore, files: list[str], columns: list[str]) -> pa.Table:
    import pyarrow.dataset as ds

    if not files:
        return pa.table({})
    return ds.dataset([store.path(p) for p in files], filesystem=store.fs, format="parquet").to_table(columns=columns)


def _remove_unreferenced_staging(store: ArchiveStore, lease: ArchiveLease) -> None:
    """Staging folders of batches no longer marked incomplete: what a fenced-off attempt wrote after the batch was
    finished without it (a batch is marked before anything is staged for it, and unmarked only once complete)."""
    markers = {path.rsplit("/", 1)[-1] for path in store.list_files(INCOMPLETE_DIR)}
    for batch_id in store.list_dirs(layout.STAGING_DIR):
        if layout.is_batch_id(batch_id) and batch_id not in markers:
            lease.fence()
            store.delete_dir(layout.staging_dir(batch_id))


def _failed(db: Database, store: ArchiveStore, batch_id: str, exc: BaseException, log) -> dict:
    record = stuck.record_failure(db, store, batch_id, exc)
    if record["parked"]:
        log(f"archive batch {batch_id} parked after {record['failures']} failed recoveries: {record['last_error']}; "
            f"its window is skipped, other hours keep archiving (scbda archive --retry-parked retries it)")
    return record


def _abandon(db: Database, store: ArchiveStore, batch_id: str, why: str, log) -> None:
    """A batch that provably deleted nothing and committed nothing: its traces go, MongoDB still has its rows."""
    log(f"archive batch {batch_id} dropped: {why}; its rows are still in MongoDB and go into the next batch")
    store.delete_dir(layout.staging_dir(batch_id))
    manifest_store.delete_manifest(store, batch_id)
    catalog.forget(db, batch_id)
    stuck.clear(db, batch_id)
    store.delete_file(f"{INCOMPLETE_DIR}/{batch_id}")


def run_batch(db: Database, spark, store: ArchiveStore, manifest: dict, *, checkpoint: Checkpoint = _no_checkpoint,
              delete_chunk: int = DELETE_CHUNK, lease: ArchiveLease | None = None) -> dict:
    """Take one batch from whatever status it is in to ``complete`` (under the archive lease)."""
    with _Held(db, lease, "run_batch") as lease:
        try:
            return _run_batch(db, spark, store, manifest, checkpoint, delete_chunk, lease)
        except Exception as exc:
            # A writer that lost its lease may fail anywhere (its staging removed under Spark by the new holder's
            # clean-up): what it has to say is that it was fenced off, in one line.
            try:
                lease.fence()
            except LeaseLost as lost:
                raise LeaseLost(f"{lost} (then: {first_line(exc)})") from None
            raise


def _run_batch(db: Database, spark, store: ArchiveStore, manifest: dict, checkpoint: Checkpoint, delete_chunk: int,
               lease: ArchiveLease) -> dict:
    batch_id = manifest["batch_id"]
    start, cutoff = parse_iso(manifest["start"]), parse_iso(manifest["cutoff"])
    verified_ids: dict[str, pa.Array] = {}
    timings = manifest.setdefault("timings_s", {})
    clock = time.perf_counter()
    journal = durable(db)

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    def publish(status: str) -> None:
        manifest["status"] = status
        lease.fence()
        manifest_store.write_manifest(store, manifest, lease.epoch)
        catalog.record(journal, store, manifest)

    if manifest["status"] == mf.PENDING:
        selected_ids = {}
        pending = pending_business_ids(db)
        for name in manifest["collections"]:
            spec = SPECS_BY_COLLECTION[name]
            manifest["collections"][name], selected_ids[name] = _write(db, spark, store, spec, batch_id, start,
                                                                       cutoff, lap, lease, pending)
        checkpoint("written")
        for name in list(selected_ids):
            verified_ids[name] = _verify(store, manifest["collections"][name]["staged"], selected_ids.pop(name),
                                         name)
        lap("verify")
        checkpoint("verified")
        # Durable before delete (SPEC §8.11): the files first, then the manifest (write_new_text is durable).
        store.make_durable([path for entry in manifest["collections"].values() for path in entry["staged"]])
        publish(mf.VERIFIED)
        checkpoint("manifest")
    if manifest["status"] == mf.VERIFIED:
        for name, entry in manifest["collections"].items():
            ids = verified_ids[name] if name in verified_ids else read_ids(store, _present(store, entry))
            entry["deleted_count"] = _delete(journal[name], ids, checkpoint, delete_chunk, lease)
        lap("delete")
        checkpoint("deleted")
        lease.fence()
        for entry in manifest["collections"].values():
            staging.commit(store, entry.get("staged", entry["files"]), entry["files"])
        lap("commit")
        checkpoint("committed")
        publish(mf.COMPLETE)
        checkpoint("complete")
    lease.fence()
    for name, entry in manifest["collections"].items():
        staging.remove_orphans(store, name, batch_id, entry["partitions"], entry["files"])
    store.delete_dir(layout.staging_dir(batch_id))
    manifest_store.prune(store, batch_id)
    store.delete_file(f"{INCOMPLETE_DIR}/{batch_id}")
    return manifest


def _present(store: ArchiveStore, entry: dict) -> list[str]:
    """Each file of a verified entry where it is now: still staged, or already moved by an interrupted commit."""
    return [target if store.exists(target) else source
            for source, target in zip(entry.get("staged", entry["files"]), entry["files"], strict=True)]


def _write(db: Database, spark, store: ArchiveStore, spec: CollectionSpec, batch_id: str, start: dt.datetime,
           cutoff: dt.datetime, lap: Callable[[str], None], lease: ArchiveLease,
           pending: frozenset[str] = frozenset()) -> tuple[dict, pa.Array]:
    """Select the collection's documents of [start, cutoff) chunk by chunk into this attempt's staging input (memory
    stays bounded) and have Spark write them into this attempt's staging folder; nothing enters the hour folders
    here. Returns the manifest entry (staged and final names) and the ids selected."""
    staging_folder = layout.attempt_dir(batch_id, lease.epoch, spec.collection)
    input_dir = layout.staging_input(batch_id, spec.collection, lease.epoch)
    lease.fence()
    store.delete_dir(staging_folder)  # this attempt's own (a retry within the same epoch)
    staged = staging.stage_selection(db, store, spec, start, cutoff, input_dir, exclude_business_ids=pending)
    lap("select")
    if staged.records:
        staging.spark_write(spark, store, spec, input_dir, staging_folder)
    store.delete_dir(input_dir)
    staged_files, files, partitions = staging.staged_parts(store, spec.collection, batch_id, lease.epoch,
                                                           staging_folder)
    lap("write")
    entry = mf.collection_entry(
        record_count=staged.records,
        malformed_count=staged.malformed,
        min_event_ts=min(staged.event_times, default=None),
        max_event_ts=max(staged.event_times, default=None),
        partitions=partitions,
        files=files,
        bytes_written=sum(store.size(path) for path in staged_files),
        source_bytes=staged.source_bytes,
    )
    entry["staged"] = staged_files
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
    cores), each chunk journaled (``collection`` carries the write concern) and fenced; after a failure (or a lost
    lease) no further chunk starts."""
    def delete_chunk(offset: int) -> int:
        lease.fence()
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


