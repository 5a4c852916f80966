"""The archive lease (SPEC §8.7): one archive writer at a time, whoever starts it.

One document ``{_id: "archive"}`` in the MongoDB collection ``archive_lease`` (MongoDB is the arbiter every writer
already shares; the document is ~300 bytes, nothing next to the size archival measures). A writer takes it with one
``findOneAndUpdate`` that only matches when the lease is free, expired, or held by a process of this host that is
gone, and keeps it with a heartbeat thread. Expiry is judged by the server's clock (``$$NOW``), so writers on hosts with different clocks agree.

Fencing (SPEC §8.10; Chubby's sequencers, Kafka's leader epochs in KIP-405): every take-over increments the
document's ``epoch`` (also when the same owner takes it again after expiry). A writer's epoch is its fencing token:
``fence()``, called right before every irreversible step, succeeds only while the document still carries this
writer's owner *and* epoch (a conditional, journaled write that also renews it: a lease that expired but was not
taken over is still this writer's, nobody else can have acted), and attempts name their files and manifest versions with the epoch, so a
writer resumed after a pause past its TTL stops at its next step and can only have added files nothing references.

A holder on this very host whose process is gone (pid absent, or reused by a process started later) is taken over at
once; a holder that stopped renewing is waited out to its expiry; the busy line says when the lease can be taken.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import threading
import time
import uuid

from pymongo import ReturnDocument, WriteConcern
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from scbda_assets.settings import ConfigError

LEASE_COLLECTION = "archive_lease"
LEASE_ID = "archive"
DEFAULT_TTL_SECONDS = 30.0  # a crashed writer blocks archival at most this long
DEFAULT_WAIT_SECONDS = 10.0  # how long a second writer waits before it gives up ("busy")
TTL_ENV, WAIT_ENV = "SCBDA_ARCHIVE_LEASE_SECONDS", "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS"


class ArchiveBusy(RuntimeError):
    """Another writer holds the lease; ``str(error)`` is the one line to show. Nothing was changed."""


class LeaseLost(RuntimeError):
    """This writer's lease expired or was taken over; it stopped before its next irreversible step."""


def lease_timing(environ: dict[str, str] | None = None) -> tuple[float, float]:
    """(ttl, wait) in seconds from SCBDA_ARCHIVE_LEASE_SECONDS / SCBDA_ARCHIVE_LEASE_WAIT_SECONDS (defaults 30, 10;
    also declared in settings.py, so they are accepted and validated with the other SCBDA_* variables)."""
    environ = os.environ if environ is None else environ
    values = []
    for name, default, minimum in ((TTL_ENV, DEFAULT_TTL_SECONDS, 1.0), (WAIT_ENV, DEFAULT_WAIT_SECONDS, 0.0)):
        text = environ.get(name, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            value = float("nan")
        if not value >= minimum:
            raise ConfigError(f"{name}={text!r} is not valid: expected a number of seconds >= {minimum:g}")
        values.append(value)
    return values[0], values[1]


def new_owner(kind: str, run_id: str | None = None) -> str:
    """A readable, unique owner: what holds the lease and where (shown to the writer that loses)."""
    return f"{kind} {run_id or uuid.uuid4().hex[:8]} on {socket.gethostname()} pid {os.getpid()}"



@dataclasses.dataclass
class LeaseHolder:
    owner: str
    acquired_at: dt.datetime | None
    expires_at: dt.datetime | None
    epoch: int = 0
    host: str | None = None
    pid: int | None = None
    process_started: float | None = None
    heartbeat_at: dt.datetime | None = None

    def seconds_left(self, now: dt.datetime) -> float:
        return max(0.0, (self.expires_at - now).total_seconds()) if self.expires_at else 0.0

    def describe(self, now: dt.datetime) -> str:
        return f"{self.owner} (epoch {self.epoch}; it can be taken in {self.seconds_left(now):.0f} s unless renewed)"

    def process_gone(self) -> bool:
        """This holder ran on this host and its process no longer exists (judged only for holders of this host)."""
        if self.host != socket.gethostname() or not self.pid:
            return False
        started = process_start_time(self.pid)
        return started is None or (self.process_started is not None and abs(started - self.process_started) > 1e-6)


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (clock ticks since boot, from /proc), None if no such process: a pid reused by a later
    process has another start time."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return float(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return -1.0  # alive, start time unknown (no /proc): never judged reused


def _holder(doc: dict | None) -> LeaseHolder | None:
    if doc is None or not doc.get("owner"):
        return None
    return LeaseHolder(doc["owner"], _utc(doc.get("acquired_at")), _utc(doc.get("expires_at")), int(doc.get("epoch", 0)),
                       doc.get("host"), doc.get("pid"), doc.get("process_started"), _utc(doc.get("heartbeat_at")))


def current_holder(db: Database) -> LeaseHolder | None:
    return _holder(db[LEASE_COLLECTION].find_one({"_id": LEASE_ID}))


def server_now(db: Database) -> dt.datetime:
    """The MongoDB server's clock: every writer and the sensor judge expiry by it, whatever their own clocks say."""
    return _utc(db.command("hello")["localTime"])


def _utc(value):
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value


def durable(db: Database) -> Database:
    """The database with journaled writes (majority on a replica set): what a delete or a status change needs."""
    replicated = bool(db.client.admin.command("hello").get("setName"))
    return db.client.get_database(db.name, write_concern=WriteConcern(w="majority" if replicated else 1, j=True))


class ArchiveLease:
    """Usage: ``with ArchiveLease(db, owner).acquire(): ...``; raises ArchiveBusy when another writer keeps it."""

    def __init__(self, db: Database, owner: str, *, ttl_s: float | None = None, wait_s: float | None = None):
        default_ttl, default_wait = lease_timing()
        self.db, self.owner = db, owner
        self.ttl_s = default_ttl if ttl_s is None else ttl_s
        self.wait_s = default_wait if wait_s is None else wait_s
        self.epoch = 0
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None
        self.held = False

    # -- taking and keeping ---------------------------------------------------------------------------------
    def _take(self, dead: LeaseHolder | None = None) -> bool:
        """One attempt: take the lease if it is free, expired, or held by ``dead`` (a holder of this host whose
        process is gone, matched by owner and epoch so that only that very holding is taken). One atomic update of
        the one lease document, which also increments the epoch."""
        ttl_ms = int(self.ttl_s * 1000)
        collection = durable(self.db)[LEASE_COLLECTION]
        try:
            collection.insert_one({"_id": LEASE_ID, "owner": None, "epoch": 0})  # a free lease document, once
        except DuplicateKeyError:
            pass
        takeable = [{"$eq": [{"$ifNull": ["$owner", None]}, None]}, {"$lt": ["$expires_at", "$$NOW"]}]
        if dead is not None:
            takeable.append({"$and": [{"$eq": ["$owner", dead.owner]}, {"$eq": [{"$ifNull": ["$epoch", 0]}, dead.epoch]}]})
        token = uuid.uuid4().hex
        doc = collection.find_one_and_update(
            {"_id": LEASE_ID, "$expr": {"$or": takeable}},
            [{"$set": {"owner": self.owner, "token": token, "epoch": {"$add": [{"$ifNull": ["$epoch", 0]}, 1]},
                       "host": socket.gethostname(), "pid": os.getpid(),
                       "process_started": process_start_time(os.getpid()), "ttl_ms": ttl_ms,
                       "acquired_at": "$$NOW", "heartbeat_at": "$$NOW", "expires_at": {"$add": ["$$NOW", ttl_ms]}}}],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None or doc.get("token") != token:
            return False
        self.epoch = int(doc["epoch"])
        return True

    def acquire(self) -> "ArchiveLease":
        deadline = time.monotonic() + self.wait_s
        while True:
            holder = current_holder(self.db)
            dead = holder if holder is not None and holder.process_gone() else None
            if self._take(dead):
                break
            if time.monotonic() >= deadline:
                holder = current_holder(self.db)
                now = server_now(self.db)
                if holder is not None and self._stalled(holder, now) and holder.seconds_left(now) < self.ttl_s + 1:
                    # It stopped renewing: wait out its expiry instead of giving up on a holder that is gone.
                    deadline = time.monotonic() + holder.seconds_left(now) + 0.5
                    time.sleep(min(0.5, holder.seconds_left(now) + 0.05))
                    continue
                who = holder.describe(now) if holder else "another writer"
                raise ArchiveBusy(f"archive busy: the archive lease is held by {who}; nothing was changed, "
                                  f"try again then")
            time.sleep(min(0.5, max(0.05, self.wait_s / 20)))
        self.held, self._lost = True, None
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="archive-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _stalled(holder: LeaseHolder, now: dt.datetime) -> bool:
        """No heartbeat for over half its TTL (it renews every third): the holder stopped renewing."""
        if holder.heartbeat_at is None or holder.expires_at is None:
            return True
        ttl = (holder.expires_at - holder.heartbeat_at).total_seconds()
        return (now - holder.heartbeat_at).total_seconds() > ttl / 2

    def _mine(self) -> dict:
        return {"_id": LEASE_ID, "owner": self.owner, "epoch": self.epoch}

    def _renew(self, collection) -> bool:
        """Extend the lease if it still carries this owner and epoch — also after it expired, if nobody took it over
        meanwhile (a take-over increments the epoch, so nothing can have been done by another writer)."""
        ttl_ms = int(self.ttl_s * 1000)
        return bool(collection.update_one(
            self._mine(), [{"$set": {"heartbeat_at": "$$NOW", "fenced_at": "$$NOW",
                                     "expires_at": {"$add": ["$$NOW", ttl_ms]}}}]).matched_count)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self._renew(self.db[LEASE_COLLECTION])
            except Exception as exc:  # a failed renewal is retried; fence() asks the server again
                self._last_error = exc
                continue
            if not renewed:
                self._lost = "the lease was taken over by another writer (a higher epoch)"
                return

    def fence(self) -> None:
        """Raise LeaseLost unless the lease still carries this writer's owner and epoch — a journaled conditional
        write on the server, which also renews it; a take-over after it has a higher epoch and fails the next
        fence. Call right before each irreversible step."""
        if not self.held:
            raise LeaseLost("archive lease not held")
        if self._lost is None and not self._renew(durable(self.db)[LEASE_COLLECTION]):
            self._lost = "the lease was taken over by another writer after it expired (a higher epoch)"
        if self._lost is not None:
            raise LeaseLost(f"archive lease lost by {self.owner} (epoch {self.epoch}): {self._lost}; "
                            f"stopped before the next step")

    ensure_held = fence

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:  # back to free (only if still ours: same owner and epoch)
            self.db[LEASE_COLLECTION].update_one(self._mine(),
                                                 {"$set": {"owner": None, "released_at": dt.datetime.now(dt.UTC)}})
        self.held = False

    def __enter__(self) -> "ArchiveLease":
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
