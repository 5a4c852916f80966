"""What a KPI run reads from the history layer (no Dagster here): order sums over any window, per pair and per UTC
day, and the shipments of a window. Whole stored hours come from ``orders_hourly`` (a $group over at most
50 pairs × 24 × days rows); the partial hours at the window's edges, and any hour not stored yet, are summed from
the raw events (``orders_hourly.order_sums``: hot ∪ cold, de-duplicated).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import orders_hourly
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.timeutil import DAY, HOUR, MINUTE, ceil_hour, ceil_minute, floor_day, floor_hour


SumsOf = Callable[[dt.datetime, dt.datetime], list[dict]]
_SUM_FIELDS = orders_hourly.SUMS


def _add(total: dict, row: dict, fields: tuple[str, ...] = _SUM_FIELDS) -> None:
    for name in fields:
        total[name] = total.get(name, 0) + row[name]


def _stored_group(history: Database, start: dt.datetime, end: dt.datetime, by: dict) -> list[dict]:
    pipeline = [
        {"$match": {"hour": {"$gte": start, "$lt": end}}},
        {"$group": {"_id": by, **{name: {"$sum": f"${name}"} for name in _SUM_FIELDS}}},
    ]
    return [{**doc.pop("_id"), **doc} for doc in history[ORDERS_HOURLY].aggregate(pipeline)]


def _pieces(history: Database, start: dt.datetime, end: dt.datetime) -> tuple[list[tuple], list[tuple]]:
    """Split [start, end) into runs of stored whole hours and raw ranges (edges, hours not stored)."""
    stored = orders_hourly.stored_hours(history, ceil_hour(start), floor_hour(end))
    stored_runs: list[tuple] = []
    raw: list[tuple] = []
    cursor = start
    hour = ceil_hour(start)
    if cursor < min(hour, end):
        raw.append((cursor, min(hour, end)))
    while hour + HOUR <= end:
        if hour in stored:
            if stored_runs and stored_runs[-1][1] == hour:
                stored_runs[-1] = (stored_runs[-1][0], hour + HOUR)
            else:
                stored_runs.append((hour, hour + HOUR))
        elif raw and raw[-1][1] == hour:
            raw[-1] = (raw[-1][0], hour + HOUR)
        else:
            raw.append((hour, hour + HOUR))
        hour += HOUR
    tail = max(hour, start)
    if tail < end:
        raw.append((tail, end))
    return stored_runs, raw


def raw_order_sums(db: Database, archive: ArchiveStore | None) -> SumsOf:
    return lambda lo, hi: orders_hourly.order_sums(db, archive, lo, hi)


def pair_requested_units(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime,
                         raw_sums: SumsOf | None = None) -> list[dict]:
    """Per (sku_id, dc_id): the units requested in [start, end) (the demand window). ``raw_sums`` sums a range that
    is not stored (default: the raw events, hot ∪ cold). The window's first hour, cut at ``start``, comes from the
    stored hour's minutes when it has them, so a 7-day window never re-reads an archived hour of raw orders."""
    raw_sums = raw_sums or raw_order_sums(db, archive)
    history = history_database(db)
    pieces: list[dict] = []
    head = _head_from_minutes(history, start, end)
    if head is not None:
        rows, partial_minute = head
        pieces += rows
        if partial_minute is not None:
            pieces += raw_sums(*partial_minute)
        start = ceil_hour(start)
    stored_runs, raw = _pieces(history, start, end)
    pieces += [row for lo, hi in stored_runs for row in _stored_group(history, lo, hi, {"sku_id": "$sku_id",
                                                                                          "dc_id": "$dc_id"})]
    pieces += [row for lo, hi in raw for row in raw_sums(lo, hi)]
    totals: dict[tuple, dict] = {}
    for row in pieces:
        _add(totals.setdefault((row["sku_id"], row["dc_id"]), {"sku_id": row["sku_id"], "dc_id": row["dc_id"]}), row,
             ("units_requested",))
    return list(totals.values())


def _head_from_minutes(history: Database, start: dt.datetime,
                       end: dt.datetime) -> tuple[list[dict], tuple | None] | None:
    """[start, ceil_hour(start)) from the stored minutes of start's hour: (per pair units, the partial minute
    [start, next minute) left to sum from the raw events, or None). None when start is on the hour, the window ends
    inside that hour, or the hour is not stored with its minutes."""
    hour = floor_hour(start)
    if start == hour or ceil_hour(start) > end or hour not in orders_hourly.stored_hours(history, hour, hour + HOUR):
        return None
    first_minute = ceil_minute(start)
    rows = orders_hourly.requested_since(history, hour, (first_minute - hour) // MINUTE)
    if rows is None:
        return None
    return rows, ((start, first_minute) if start < first_minute else None)


def daily_pair_sums(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime,
                    raw_sums: SumsOf | None = None) -> list[dict]:
    """Per (UTC day, sku_id, dc_id) over [start, end): the order sums; ``day`` is an ISO date."""
    raw_sums = raw_sums or raw_order_sums(db, archive)
    totals: dict[tuple, dict] = {}
    history = history_database(db)
    stored_runs, raw = _pieces(history, start, end)
    day_of = {"$dateToString": {"date": "$hour", "format": "%Y-%m-%d", "timezone": "UTC"}}
    pieces = [row for lo, hi in stored_runs
              for row in _stored_group(history, lo, hi, {"day": day_of, "sku_id": "$sku_id", "dc_id": "$dc_id"})]
    for lo, hi in raw:  # a raw range never spans a day boundary unsplit: cut it at midnights
        cursor = lo
        while cursor < hi:
            stop = min(hi, floor_day(cursor) + DAY)
            pieces += [{**row, "day": f"{cursor:%Y-%m-%d}"} for row in raw_sums(cursor, stop)]
            cursor = stop
    for row in pieces:
        key = (row["day"], row["sku_id"], row["dc_id"])
        _add(totals.setdefault(key, {"day": row["day"], "sku_id": row["sku_id"], "dc_id": row["dc_id"]}), row)
    return list(totals.values())
