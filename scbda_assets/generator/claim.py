"""One stream, one writer (SPEC §7): a writer claims the stream on ``generator_state`` before it writes anything.

The claim is a field of the state document, ``claim: {token, rate, seed, host, pid, start, end, expires}``, set by
one compare-and-set on (as_of, no live claim); every later commit of the writer is conditional on its token.
Before claiming, everything past the committed clock is rolled back (:func:`roll_back`): facts whose event time is
at or after ``as_of``, receipts dated at or after it, late events it parked — none of it is known to the committed
state, so a losing, interrupted or SIGKILLed writer leaves nothing behind once the next writer starts.

A claim is live until ``expires`` (the database server's clock, ``$$NOW``: no host clock is compared); the writer
renews it before every write. A claim of a process that is gone on this very host is taken over at once.
The stream's rate and seed are recorded in the state: a writer with others is refused (the ids of a minute do not
say which rate wrote them, so two rates must never share a stream).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from scbda_assets.generator.store import PENDING_COLLECTION, STATE_COLLECTION, STATE_ID
from scbda_assets.kpis.rollup import ROLLUP
from scbda_assets.settings import ConfigError

CLAIM_TTL_SECONDS = 60  # far longer than one batch (~30 000 events, about a second); renewed before every write
WAIT_SECONDS = 10.0  # how long a second writer waits for a live claim to be released before it says "busy"
EVENT_TIME = {"orders_fact": "order_ts", "shipments_fact": "shipment_ts", "inventory_fact": "inventory_ts"}


class ClockMoved(RuntimeError):
    """Another writer committed first: the clock is not the one this writer read. Nothing of this writer is
    committed (and what it wrote past the clock is rolled back by the next claim)."""


class StreamBusy(RuntimeError):
    """Another live writer holds the stream. ``str(error)`` is one line; nothing was written."""


class ClaimLost(RuntimeError):
    """This writer's claim was taken over (it stopped renewing for longer than the TTL); it stops writing."""


class StreamMismatch(ConfigError):
    """A writer with another rate or seed than the stream's (exit 2; nothing written)."""


@dataclasses.dataclass(frozen=True)
class Claim:
    token: str
    rate: float
    seed: int
    host: str
    pid: int

    @classmethod
    def new(cls, rate: float, seed: int) -> Claim:
        return cls(uuid.uuid4().hex, float(rate), int(seed), socket.gethostname(), os.getpid())

    def fields(self, start: dt.datetime, end: dt.datetime) -> dict:
        return {"token": self.token, "rate": self.rate, "seed": self.seed, "host": self.host, "pid": self.pid,
                "start": start, "end": end}


def _expires(ttl_s: float) -> dict:
    return {"$add": ["$$NOW", int(ttl_s * 1000)]}


def stream_params(db: Database) -> tuple[float, int] | None:
    """(rate, seed) the stream was written with; None for a new stream (or a state from before they were kept)."""
    doc = db[STATE_COLLECTION].find_one({"_id": STATE_ID}, {"rate": 1, "seed": 1})
    if not doc or doc.get("rate") is None or doc.get("seed") is None:
        return None
    return float(doc["rate"]), int(doc["seed"])


def stream_rate(db: Database, default: float) -> float:
    """The rate the dimensions are calibrated for: the stream's (so the schedule and a backfill agree), else
    ``default`` (the configured rate) before any stream exists."""
    stored = stream_params(db)
    return stored[0] if stored else float(default)


def resolve_params(db: Database, rate: float | None, seed: int | None, *, default_rate: float,
                   default_seed: int) -> tuple[float, int]:
    """The rate and seed to write with: the stream's; an explicit other one is refused with one line."""
    stored = stream_params(db)
    if stored is None:
        return float(rate if rate is not None else default_rate), int(seed if seed is not None else default_seed)
    stream_rate, stream_seed = stored
    for name, asked, have in (("--rate", rate, stream_rate), ("--seed", seed, stream_seed)):
        if asked is not None and float(asked) != float(have):
            raise StreamMismatch(
                f"{name} {asked:g} differs from the stream's ({have:g}, rate {stream_rate:g}/min, seed "
                f"{stream_seed}) in {db.name}.{STATE_COLLECTION}: one stream has one rate and seed; omit {name} "
                f"or pass {have:g}, or use another database")
    return stream_rate, stream_seed


def change_params(db: Database, rate: float, seed: int) -> None:
    """Continue the stream at another rate and seed from its committed clock on (a benchmark's 1x history, then
    100x live): the minutes already written keep theirs, every later minute is the new one's. Refused while
    another writer holds the stream. Not a CLI option: a backfill with other parameters is refused (SPEC §7)."""
    changed = db[STATE_COLLECTION].update_one(
        {"_id": STATE_ID, "$or": [{"claim": None}, {"$expr": {"$lt": ["$claim.expires", "$$NOW"]}}]},
        {"$set": {"rate": float(rate), "seed": int(seed)}})
    if changed.matched_count != 1:
        raise StreamBusy("generator busy: another writer holds the stream (or there is none); nothing was changed")


def _process_gone(claim: dict) -> bool:
    if claim.get("host") != socket.gethostname() or not isinstance(claim.get("pid"), int):
        return False
    if claim["pid"] == os.getpid():
        return False  # this process: a claim of an earlier call was released or rolled back by that call
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(db: Database, claim: Claim, *, as_of: dt.datetime | None, initial: Callable[[], dict],
            start: dt.datetime, end: dt.datetime, wait_s: float = WAIT_SECONDS, ttl_s: float = CLAIM_TTL_SECONDS,
            sleep: Callable[[float], None] = time.sleep) -> None:
    """Claim the stream at the committed clock ``as_of`` (None: a new stream, inserted as ``initial()`` with the
    claim), after rolling back anything past the clock. Raises :class:`StreamBusy` when another live writer holds it
    after ``wait_s``, :class:`ClockMoved` when the clock is not ``as_of``."""
    collection = db[STATE_COLLECTION]
    fields = claim.fields(start, end)
    deadline = time.monotonic() + wait_s
    while True:
        if as_of is None:
            # (a new stream starts after everything in either store: stream.refuse_rewrite, so nothing to roll back)
            provisional = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_s)  # replaced by the server's at once
            try:
                collection.insert_one({"_id": STATE_ID, **initial(), "claim": {**fields, "expires": provisional}})
            except DuplicateKeyError:
                raise ClockMoved("another writer started the stream first; nothing was written") from None
            renew(db, claim, ttl_s)
            return
        current = collection.find_one({"_id": STATE_ID}, {"as_of": 1, "claim": 1})
        if current is None or current.get("as_of") != as_of:
            raise ClockMoved(f"the generator clock moved from {as_of:%Y-%m-%dT%H:%MZ} before this run could claim "
                             f"the stream: another run wrote it first; nothing was written")
        held = current.get("claim")
        free = {"$or": [{"claim": None},
                        {"$expr": {"$lt": ["$claim.expires", "$$NOW"]}}]}
        if held and _process_gone(held):
            free = {"claim.token": held["token"]}
        taken = collection.update_one(
            {"_id": STATE_ID, "as_of": as_of, **free},
            [{"$set": {"claim": {"$literal": fields}}}, {"$set": {"claim.expires": _expires(ttl_s)}}],
        )
        if taken.matched_count == 1:
            roll_back(db, as_of)
            return
        if time.monotonic() >= deadline:
            held = (collection.find_one({"_id": STATE_ID}, {"claim": 1}) or {}).get("claim") or held or {}
            raise StreamBusy(
                f"generator busy: the stream is being written by pid {held.get('pid')} on {held.get('host')} "
                f"({held.get('start'):%Y-%m-%dT%H:%MZ} to {held.get('end'):%Y-%m-%dT%H:%MZ}, rate "
                f"{held.get('rate'):g}/min); nothing was written, run again when it is done"
                if held.get("start") else "generator busy: another writer holds the stream; nothing was written")
        sleep(0.25)


def renew(db: Database, claim: Claim, ttl_s: float = CLAIM_TTL_SECONDS) -> None:
    """Extend this writer's claim before a write; :class:`ClaimLost` if another writer has taken it over."""
    result = db[STATE_COLLECTION].update_one({"_id": STATE_ID, "claim.token": claim.token},
                                             [{"$set": {"claim.expires": _expires(ttl_s)}}])
    if result.matched_count != 1:
        raise ClaimLost("the generator's claim on the stream was taken over by another writer; this run stopped "
                        "writing and its uncommitted minutes are rolled back by the writer that holds the stream")


def release(db: Database, claim: Claim, *, undo: bool = False) -> bool:
    """Drop this writer's claim; ``undo`` (an interrupted writer) first removes what it wrote past its last commit.
    False when the claim was no longer this writer's (then nothing is touched)."""
    state = db[STATE_COLLECTION].find_one({"_id": STATE_ID, "claim.token": claim.token}, {"as_of": 1})
    if state is None:
        return False
    if undo:
        roll_back(db, state["as_of"])
    db[STATE_COLLECTION].update_one({"_id": STATE_ID, "claim.token": claim.token}, {"$set": {"claim": None}})
    return True


def roll_back(db: Database, as_of: dt.datetime) -> dict[str, int]:
    """Remove what no committed state knows: facts at or after the clock, receipts dated at or after it (the
    shipment is in transit again, as the state's purchase orders say), late events of those minutes."""
    removed = {name: db[name].delete_many({field: {"$gte": as_of}}).deleted_count
               for name, field in EVENT_TIME.items()}
    if removed["orders_fact"]:
        # The KPI minute rollup may have folded them; its rows at or after the clock hold nothing else (every
        # committed order is older), and it never lowers a row by itself (kpis/rollup.py, step 2).
        db[ROLLUP].delete_many({"order_minute": {"$gte": as_of}})
    removed["receipts"] = db.shipments_fact.update_many(
        {"actual_arrival_ts": {"$gte": as_of}},
        {"$set": {"status": "in_transit", "actual_arrival_ts": None}}).modified_count
    pending = db[PENDING_COLLECTION]
    removed["pending"] = pending.delete_many(
        {"$or": [{f"doc.{field}": {"$gte": as_of}} for field in EVENT_TIME.values()]}).deleted_count
    pending.update_many({"doc.actual_arrival_ts": {"$gte": as_of}},
                        {"$set": {"doc.status": "in_transit", "doc.actual_arrival_ts": None}})
    return removed
