"""Advance the event stream: simulate whole minutes from the stored clock and write them (live and backfill).

The live schedule and `scbda generate` both call :func:`advance`; only the window differs. Each minute's RNG is
derived from (seed, minute), so a retried minute reproduces the same events and ids. A run first claims the stream
(:mod:`scbda_assets.generator.claim`: one writer, its rate and seed, everything past the committed clock rolled
back), then writes batches (about ``BATCH_EVENTS`` events, at least one minute), each applied by one state update
conditional on the claim (see :mod:`scbda_assets.generator.store`), so the stream has no gaps and no overlaps and a
run that stops leaves nothing the committed state does not know.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable

import numpy as np
from pymongo.database import Database

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.domain import demand, simulation
from scbda_assets.domain.calibration import calibrate
from scbda_assets.archive import catalog
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.generator import claim, documents, store
from scbda_assets.generator.claim import ClaimLost, ClockMoved, StreamBusy  # noqa: F401 - the stream's errors
from scbda_assets.settings import ConfigError, Settings
from scbda_assets.timeutil import floor_minute, parse_iso

MINUTE = np.timedelta64(1, "m")
BATCH_EVENTS = 30_000
SNAPSHOT_EVERY_MINUTES = 1  # inventory snapshot cadence: minutes whose index since the epoch is a multiple


class RewriteRefused(ConfigError):
    """A new stream would start at or before time already written (in MongoDB or the archive)."""


@dataclasses.dataclass
class Progress:
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    minutes: int = 0
    written: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(FACT_COLLECTIONS, 0))
    generated: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(FACT_COLLECTIONS, 0))
    received: int = 0
    late_pending: int = 0
    skipped_minutes: int = 0
    seconds: float = 0.0
    preview: dict[str, list[dict]] = dataclasses.field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.written.values())


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def minute_rng(seed: int, minute_start: np.datetime64) -> np.random.Generator:
    """The RNG of one simulated minute: a pure function of (seed, minute)."""
    minute = int(minute_start.astype("datetime64[m]").astype(np.int64))
    return np.random.default_rng([seed, minute])


def advance(
    db: Database,
    settings: Settings,
    *,
    end: dt.datetime,
    start_if_new: dt.datetime,
    max_minutes: int | None = None,
    rate: float | None = None,
    seed: int | None = None,
    jump_to: dt.datetime | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    snapshot_every_minutes: int = SNAPSHOT_EVERY_MINUTES,
    archive: ArchiveStore | None = None,
    wait_s: float = claim.WAIT_SECONDS,
    now: Callable[[], dt.datetime] | None = None,
) -> Progress:
    """Write every whole minute from the stored clock up to ``end`` (at most ``max_minutes``).

    A database without state starts at ``start_if_new`` (initial stock from the calibration). ``jump_to`` moves an
    older clock forward without events (backfill of a window that starts after the stored clock). ``on_batch``
    is called with (minutes, events) after each applied batch (progress bars). Snapshots are written for minutes
    on the ``snapshot_every_minutes`` cadence (the balance holds between consecutive snapshots either way).
    ``rate``/``seed``: None follows the stream's (a new stream: the settings'); another than the stream's is refused.
    ``archive`` (default: the settings' archive root) is read only when a new stream starts (see
    :func:`refuse_rewrite`). A live claim of another writer is waited for ``wait_s``, then :class:`StreamBusy`.
    ``now``: the clock that stamps ``ingested_at`` (injectable; default this host's).
    """
    started = time.perf_counter()
    rate, seed = claim.resolve_params(db, rate, seed, default_rate=settings.events_per_minute,
                                      default_seed=settings.seed)
    calibration = calibrate(rate)
    ramadan = demand.ramadan_ranges(settings.ramadan)
    store.ensure_indexes(db)
    progress = Progress()

    state = store.load_state(db)
    stored_as_of = None if state is None else state.as_of
    if state is None:
        begin = simulation.to_datetime64(floor_minute(start_if_new))
        refuse_rewrite(db, archive or ArchiveStore(settings.archive_uri), store.to_datetime(begin))
        state = simulation.initial_state(begin, calibration, np.random.default_rng([seed, 0]))
    target = simulation.to_datetime64(floor_minute(end))
    if jump_to is not None and state.as_of < simulation.to_datetime64(floor_minute(jump_to)):
        jumped = simulation.to_datetime64(floor_minute(jump_to))
        progress.skipped_minutes = int((jumped - state.as_of) / MINUTE)
        state = dataclasses.replace(state, as_of=jumped)
    if max_minutes is not None:
        target = min(target, state.as_of + max_minutes * MINUTE)
    progress.start = store.to_datetime(state.as_of)
    batch_minutes = int(max(1, min(60, BATCH_EVENTS // max(rate, 1.0))))

    if state.as_of < target:
        writer = claim.Claim.new(rate, seed)
        info = {"rate": rate, "seed": seed}
        claim.acquire(db, writer, as_of=None if stored_as_of is None else store.to_datetime(stored_as_of),
                      initial=lambda: store.state_fields(state, {**info, "written_at": None}),
                      start=store.to_datetime(state.as_of), end=store.to_datetime(target), wait_s=wait_s)
        if stored_as_of is None:
            stored_as_of = state.as_of  # the initial stock is committed with the claim
        clock = now or wall_clock  # ingest stamps (the KPI watermarks follow them: kpis/rollup.sealed_before)
        try:
            while state.as_of < target:
                batch_end = min(target, state.as_of + batch_minutes * MINUTE)
                state, stored_as_of = _write_batch(
                    db, state, stored_as_of, batch_end, calibration, seed, settings, ramadan, progress, rate,
                    snapshot_every_minutes, writer, clock(),
                )
                if on_batch is not None:
                    on_batch(progress.minutes, progress.events)
        except BaseException:  # Ctrl-C included: what this run wrote past its last commit goes before it stops
            claim.release(db, writer, undo=True)
            raise
        claim.release(db, writer)
    # Rewrite the per-pair projection even when there was nothing to do (repairs a crash after the state update).
    if stored_as_of is not None:
        current = store.load_state(db)
        store.write_inventory_state(
            db, current, calibration.policy(demand.season_multiplier(demand.local_date(current.as_of), ramadan))
        )
    progress.end = store.to_datetime(state.as_of)
    progress.seconds = time.perf_counter() - started
    return progress


def refuse_rewrite(db, archive: ArchiveStore, start: dt.datetime) -> None:
    """A new stream (no committed state: deleted, or a fresh MongoDB on an old archive root) must start after every
    event already stored: its minutes would get the same ids as the old stream's with other contents (SPEC §7)."""
    newest = store.newest_event_time(db)
    where = f"MongoDB ({db.name})"
    archived = _newest_archived(db, archive)
    if archived is not None and (newest is None or archived > newest):
        newest, where = archived, f"the archive ({archive.root_uri})"
    if newest is not None and start <= newest:
        raise RewriteRefused(
            f"a new stream starting {start:%Y-%m-%dT%H:%MZ} would rewrite time already stored: the newest event in "
            f"{where} is {newest:%Y-%m-%dT%H:%M:%SZ}; start after it (--end later than "
            f"{newest:%Y-%m-%dT%H:%MZ} plus --minutes), or use a new database and archive root")


def _newest_archived(db, archive: ArchiveStore) -> dt.datetime | None:
    times = [parse_iso(entry["max_event_ts"]) for batch in catalog.batches(db, archive)
             for entry in (batch.get("collections") or {}).values() if entry and entry.get("max_event_ts")]
    return max(times, default=None)


def _write_batch(db, state, stored_as_of, batch_end, calibration, seed, settings, ramadan, progress, rate, cadence,
                 writer, ingested_at):
    batch_start = state.as_of
    end_dt = store.to_datetime(batch_end)
    end_naive = end_dt.replace(tzinfo=None)  # documents carry naive UTC datetimes
    facts: dict[str, list[dict]] = {name: [] for name in FACT_COLLECTIONS}
    pending: list[tuple[str, str, dt.datetime, dict]] = []
    received: list[tuple[str, dt.datetime]] = []
    minutes = 0
    while state.as_of < batch_end:
        state, events = simulation.step(
            state, state.as_of + MINUTE, calibration, minute_rng(seed, state.as_of),
            late_fraction=settings.late_event_fraction, ramadan=ramadan,
        )
        minutes += 1
        for name, key, (docs, releases) in (
            ("orders_fact", "order_id", documents.order_documents(events, ingested_at)),
            ("shipments_fact", "shipment_id", documents.shipment_documents(events, ingested_at)),
        ):
            progress.generated[name] += len(docs)
            for doc, release in zip(docs, releases):
                if release >= end_naive:
                    pending.append((name, doc[key], release, doc))
                else:
                    facts[name].append(doc)
        if int(events.start.astype("datetime64[m]").astype(np.int64)) % cadence == 0:
            snapshots = documents.snapshot_documents(events, ingested_at)
            progress.generated["inventory_fact"] += len(snapshots)
            facts["inventory_fact"].extend(snapshots)
        received.extend(documents.receipts(events))

    for name, docs in store.due_pending(db, end_dt).items():
        for doc in docs:
            doc["ingested_at"] = ingested_at
        facts[name].extend(docs)
    for name, docs in facts.items():
        claim.renew(db, writer)  # a writer whose claim was taken over stops here, before it writes
        progress.written[name] += store.insert_ignoring_duplicates(db[name], docs)
        if docs and name not in progress.preview:
            progress.preview[name] = docs[:5]
    claim.renew(db, writer)
    progress.received += store.apply_receipts(db, received)
    store.store_pending(db, pending)
    progress.late_pending = len(pending)

    info = {"rate": rate, "seed": seed, "written_at": ingested_at}
    if not store.save_state(db, state, stored_as_of, info, claim_token=writer.token):
        raise ClockMoved(
            f"the generator clock moved while writing {store.to_datetime(batch_start).isoformat()} to "
            f"{end_dt.isoformat()}: another run took the stream over; this run's uncommitted minutes are rolled back"
        )
    store.drop_released(db, end_dt)
    progress.minutes += minutes
    return state, state.as_of
