"""Check the history layer against a recomputation from the raw events (no Dagster here)."""

from __future__ import annotations

import datetime as dt
import math

from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import orders_hourly
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.timeutil import HOUR, floor_hour, utc

CHECK_HOURS = 6


def _same(stored: dict, fresh: dict) -> bool:
    for name in orders_hourly.SUMS:
        a, b = stored.get(name, 0), fresh.get(name, 0)
        if isinstance(a, float) or isinstance(b, float):
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6):
                return False
        elif a != b:
            return False
    return True


def verify_recent_hours(db: Database, archive: ArchiveStore | None, *, now: dt.datetime,
                        hours: int = CHECK_HOURS) -> dict:
    """Compare the stored rows of the last ``hours`` stored hours with ``order_sums`` of the raw events."""
    history = history_database(db)
    stored_hours = sorted({utc(h) for h in history[ORDERS_HOURLY].distinct(
        "hour", {"hour": {"$lt": floor_hour(now)}})})[-hours:]
    mismatched = []
    for hour in stored_hours:
        stored = {(r["sku_id"], r["dc_id"]): r for r in history[ORDERS_HOURLY].find({"hour": hour})}
        fresh = {(r["sku_id"], r["dc_id"]): r for r in orders_hourly.order_sums(db, archive, hour, hour + HOUR)}
        if set(stored) != set(fresh) or not all(_same(stored[key], fresh[key]) for key in fresh):
            mismatched.append(f"{hour:%Y-%m-%dT%H}")
    return {"checked": len(stored_hours), "mismatched": mismatched}
