"""The archive lease (SPEC §8.7): one archive writer at a time, whoever starts it.

One document ``{_id: "archive"}`` in the MongoDB collection ``archive_lease`` (MongoDB is the arbiter every writer
already shares; the document is ~200 bytes, nothing next to the size archival measures). A writer takes it with one
``findOneAndUpdate`` that only matches when the lease is free, expired or already its own, and keeps it with a
heartbeat thread. Expiry is judged by the server's clock (``$$NOW``), so writers on hosts with different clocks agree.

A writer checks ``ensure_held()`` before every irreversible step (manifest status change, delete, file removal); a
writer that lost its lease (paused longer than the TTL, network cut) stops there instead of racing the new holder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import threading
import time
import uuid

from pymongo import ReturnDocument
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

    def describe(self, now: dt.datetime) -> str:
        left = (self.expires_at - now).total_seconds() if self.expires_at else 0.0
        return f"{self.owner} (expires in {max(0.0, left):.0f} s unless renewed)"


def current_holder(db: Database) -> LeaseHolder | None:
    doc = db[LEASE_COLLECTION].find_one({"_id": LEASE_ID})
    if doc is None or not doc.get("owner"):
        return None
    return LeaseHolder(doc["owner"], _utc(doc.get("acquired_at")), _utc(doc.get("expires_at")))


def _server_now(db: Database) -> dt.datetime:
    return _utc(db.command("hello")["localTime"])


def _utc(value):
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value


class ArchiveLease:
    """Usage: ``with ArchiveLease(db, owner).acquire(): ...``; raises ArchiveBusy when another writer keeps it."""

    def __init__(self, db: Database, owner: str, *, ttl_s: float | None = None, wait_s: float | None = None):
        default_ttl, default_wait = lease_timing()
        self.db, self.owner = db, owner
        self.ttl_s = default_ttl if ttl_s is None else ttl_s
        self.wait_s = default_wait if wait_s is None else wait_s
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None
        self.held = False

    # -- taking and keeping ---------------------------------------------------------------------------------
    def _take(self) -> bool:
        """One attempt: create the lease if there is none, else take it only if it expired or is already ours
        (each a single atomic operation on the one lease document)."""
        ttl_ms = int(self.ttl_s * 1000)
        renew = {"heartbeat_at": "$$NOW", "expires_at": {"$add": ["$$NOW", ttl_ms]}}
        collection = self.db[LEASE_COLLECTION]
        try:
            collection.insert_one({"_id": LEASE_ID, "owner": None})  # a free lease document, once
        except DuplicateKeyError:
            pass
        doc = collection.find_one_and_update(
            {"_id": LEASE_ID, "$expr": {"$or": [{"$eq": [{"$ifNull": ["$owner", None]}, None]},
                                               {"$lt": ["$expires_at", "$$NOW"]}, {"$eq": ["$owner", self.owner]}]}},
            [{"$set": {"owner": self.owner, **renew,
                       "acquired_at": {"$cond": [{"$eq": ["$owner", self.owner]}, "$acquired_at", "$$NOW"]}}}],
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None and doc.get("owner") == self.owner

    def acquire(self) -> "ArchiveLease":
        deadline = time.monotonic() + self.wait_s
        while not self._take():
            if time.monotonic() >= deadline:
                holder = current_holder(self.db)
                who = holder.describe(_server_now(self.db)) if holder else "another writer"
                raise ArchiveBusy(f"archive busy: the archive lease is held by {who}; nothing was changed, "
                                  f"try again later")
            time.sleep(min(0.5, max(0.05, self.wait_s / 20)))
        self.held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="archive-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self.db[LEASE_COLLECTION].update_one(
                    {"_id": LEASE_ID, "owner": self.owner},
                    [{"$set": {"heartbeat_at": "$$NOW", "expires_at": {"$add": ["$$NOW", int(self.ttl_s * 1000)]}}}],
                ).matched_count
            except Exception as exc:  # a failed renewal is retried; ensure_held() judges by the expiry it knows
                self._last_error = exc
                continue
            if not renewed:
                self._lost = "the lease was taken over by another writer after it expired"
                return

    def ensure_held(self) -> None:
        """Raise LeaseLost unless this writer still holds an unexpired lease (checked on the server)."""
        if not self.held:
            raise LeaseLost("archive lease not held")
        if self._lost is None:
            doc = self.db[LEASE_COLLECTION].find_one(
                {"_id": LEASE_ID, "owner": self.owner, "$expr": {"$gt": ["$expires_at", "$$NOW"]}}, {"_id": 1})
            if doc is None:
                self._lost = "the lease expired (no heartbeat within its TTL)"
        if self._lost is not None:
            raise LeaseLost(f"archive lease lost by {self.owner}: {self._lost}; stopped before the next step")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:  # back to free (only if still ours)
            self.db[LEASE_COLLECTION].update_one({"_id": LEASE_ID, "owner": self.owner},
                                                 {"$set": {"owner": None, "released_at": dt.datetime.now(dt.UTC)}})
        self.held = False

    def __enter__(self) -> "ArchiveLease":
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
