"""Time from one clock: the MongoDB server's (SPEC §9). Ingest stamps and the watermarks that seal them must come
from the same clock, or a host whose clock is off by more than the sealing grace leaves orders never folded.

``skew(db)`` = the server's time − this host's, measured once (the midpoint of one ``hello`` round trip, so the
error is at most half a round trip). Callers add it to the time they were given (``now``), so a caller that
injects a fixed time keeps it and only a real difference between the two machines moves the result.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from pymongo.database import Database


def _host_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def server_time(db: Database) -> dt.datetime:
    """The server's wall clock (``hello.localTime``, millisecond precision)."""
    moment = db.command("hello")["localTime"]
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def skew(db: Database, host_now: Callable[[], dt.datetime] = _host_now) -> dt.timedelta:
    """Server time − ``host_now()``, measured at the midpoint of one round trip."""
    before, started = host_now(), time.perf_counter()
    server = server_time(db)
    half = dt.timedelta(seconds=(time.perf_counter() - started) / 2)
    return server - (before + half)


class ServerClock:
    """``now()``: this host's clock (``host_now``, injectable) corrected by the skew measured once, here."""

    def __init__(self, db: Database, host_now: Callable[[], dt.datetime] = _host_now):
        self._host_now = host_now
        self.skew = skew(db, host_now)

    def now(self) -> dt.datetime:
        return self._host_now() + self.skew
