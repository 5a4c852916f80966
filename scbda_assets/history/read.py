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
from scbda_assets.history.store import DAY, HOUR, ORDERS_HOURLY, ceil_hour, floor_hour, history_database, utc

SumsOf = Callable[[dt.datetime, dt.datetime], list[dict]]
_SUM_FIELDS = orders_hourly.SUMS


def _add(total: dict, row: dict) -> None:
    for name in _SUM_FIELDS:
        total[name] = total.get(name, 0) + row[name]
    first = row.get("first_order_ts")
    if first is not None and (total.get("first_order_ts") is None or first < total["first_order_ts"]):
        total["first_order_ts"] = first


def _stored_group(history: Database, start: dt.datetime, end: dt.datetime, by: dict) -> list[dict]:
    pipeline = [
        {"$match": {"hour": {"$gte": start, "$lt": end}}},
        {"$group": {"_id": by, **{name: {"$sum": f"${name}"} for name in _SUM_FIELDS},
                    "first_order_ts": {"$min": "$first_order_ts"}}},
    ]
    rows = []
    for doc in history[ORDERS_HOURLY].aggregate(pipeline):
        key = doc.pop("_id")
        rows.append({**key, **doc, "first_order_ts": utc(doc.get("first_order_ts"))})
    return rows


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


def pair_sums(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime,
              raw_sums: SumsOf | None = None) -> list[dict]:
    """Per (sku_id, dc_id): the order sums of [start, end) and the pair's first order time in it. ``raw_sums``
    sums a range that is not stored (default: the raw events, hot ∪ cold)."""
    raw_sums = raw_sums or raw_order_sums(db, archive)
    history = history_database(db)
    stored_runs, raw = _pieces(history, start, end)
    totals: dict[tuple, dict] = {}
    pieces = [row for lo, hi in stored_runs for row in _stored_group(history, lo, hi, {"sku_id": "$sku_id",
                                                                                         "dc_id": "$dc_id"})]
    pieces += [row for lo, hi in raw for row in raw_sums(lo, hi)]
    for row in pieces:
        _add(totals.setdefault((row["sku_id"], row["dc_id"]), {"sku_id": row["sku_id"], "dc_id": row["dc_id"]}), row)
    return list(totals.values())


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
            stop = min(hi, floor_day_of(cursor) + DAY)
            pieces += [{**row, "day": f"{cursor:%Y-%m-%d}"} for row in raw_sums(cursor, stop)]
            cursor = stop
    for row in pieces:
        key = (row["day"], row["sku_id"], row["dc_id"])
        _add(totals.setdefault(key, {"day": row["day"], "sku_id": row["sku_id"], "dc_id": row["dc_id"]}), row)
    return list(totals.values())


def floor_day_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
