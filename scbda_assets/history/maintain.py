"""Keep the history layer up to date at wall time ``now`` (no Dagster here). Called at the start of every KPI run
(so a KPI never reads a stale hour) and by the history assets.

Which order hours are (re)built:
1. missing: every whole hour of the last ``RETAIN_DAYS`` before ``floor_hour(now)`` that has no build record,
   from the store's first event on (older hours are empty by definition, and not visited);
2. late events: the hours of orders with ``ingested_at`` >= the scan watermark, unless the hour was built after
   they were visible (``stamped_at − SEAL_GRACE``, the build's time on the writer's stamp clock). The watermark then moves to ``SEAL_GRACE`` before the writer's
   stamp clock (``kpis/rollup.stamp_now``: ``now``, but no later than the newest ``ingested_at``), and builds are
   stamped on that clock too, so a writer whose clock is behind this host's loses nothing (a writer's documents
   are visible within that of the ``ingested_at`` it stamped; a rescan of the overlap only rebuilds hours, which
   is idempotent);
3. archive batches not yet folded in at their latest status: the hours they name (a late event written and archived
   between two scans is found here), read from the manifest catalog, only the batches recorded since the last read
   (``archive_batches``: one document per batch, no manifest listing).
The current hour is never stored: KPIs read it from the minute rollup (or the raw events). Shipments: every hot
shipment is re-copied (a receipt updates it in place), and the shipment hours of new archive batches are copied
from Parquet.
Finally rows older than ``RETAIN_DAYS`` are removed, so the layer stays bounded.
"""

from __future__ import annotations

import datetime as dt
import time

from pymongo.database import Database

from scbda_assets.archive.schema import ORDERS, SHIPMENTS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.archive import catalog
from scbda_assets.history import archive_batches, cold, orders_hourly, shipments
from scbda_assets.kpis import rollup
from scbda_assets.history.store import (
    HOURS,
    ORDERS_HOURLY,
    RETAIN_DAYS,
    ensure_indexes,
    get_state,
    history_database,
    set_state,
)
from scbda_assets.timeutil import DAY, floor_hour, utc

SEAL_GRACE = dt.timedelta(seconds=60)
SCAN_KEY, EARLIEST_KEY = "orders_scan", "earliest_order"


def earliest_order(db: Database, history: Database, archive: ArchiveStore | None) -> dt.datetime | None:
    """The earliest order of the whole store (hot or cold), remembered once seen (archival deletes it from MongoDB
    later; the archive's oldest event is the fallback for a history layer created after archival)."""
    state = get_state(history, EARLIEST_KEY)
    candidates = [utc(state.get("order_ts"))]
    first = db[ORDERS.collection].find_one({"order_ts": {"$type": "date"}}, {"order_ts": 1}, sort=[("order_ts", 1)])
    if first:
        candidates.append(utc(first["order_ts"]))
    if not state:
        candidates.append(cold.earliest_event(archive, ORDERS.collection, ORDERS.event_field))
    known = [c for c in candidates if c is not None]
    if not known:
        return None
    earliest = min(known)
    set_state(history, EARLIEST_KEY, {"$min": {"order_ts": earliest}})
    return earliest


def refresh(db: Database, archive: ArchiveStore | None, *, now: dt.datetime,
            rollup_from: dt.datetime | None = None) -> dict:
    """Bring the layer up to date (see the module's docstring). ``rollup_from``: the coverage of a minute-rollup fold
    done in this same run at ``now`` (hours from there on are summed from the rollup); None: from the orders."""
    started = time.perf_counter()
    history = history_database(db)
    if not get_state(history, SCAN_KEY):
        ensure_indexes(history)
    current = floor_hour(now)
    # Builds are stamped, and the scan sealed, on the writer's stamp clock, never this host's (SPEC §9); read first
    stamped = rollup.stamp_now(db, now)
    retain_from = current - RETAIN_DAYS * DAY
    earliest = earliest_order(db, history, archive)

    dirty: set[dt.datetime] = set()
    if earliest is not None:
        first = max(retain_from, floor_hour(earliest))
        stored = orders_hourly.stored_hours(history, first, current)
        hour = first
        while hour < current:
            if hour not in stored:
                dirty.add(hour)
            hour += dt.timedelta(hours=1)

    scan = get_state(history, SCAN_KEY)
    watermark = utc(scan.get("watermark"))
    if watermark is not None:
        dirty |= _hours_with_late_orders(db, history, watermark)

    batches = archive_batches.unfolded(db, history, archive)
    shipment_hours = set()
    for batch in batches:
        dirty |= {cold.partition_hour(p) for p in catalog.partitions(archive, batch, ORDERS.collection)}
        shipment_hours |= {cold.partition_hour(p) for p in catalog.partitions(archive, batch, SHIPMENTS.collection)}

    to_build = sorted(h for h in dirty if retain_from <= h < current)
    built = orders_hourly.build_hours(history, db, archive, to_build, now=now, rollup_from=rollup_from,
                                      stamped=stamped)

    hot_shipment_ids = shipments.hot_ids(db) if shipment_hours else set()
    copied_cold = sum(shipments.sync_cold_hour(history, archive, hour, skip=hot_shipment_ids)
                      for hour in sorted(shipment_hours))
    copied_hot = shipments.sync_hot(history, db)

    # Progress is recorded only after the work it covers is stored (a crash before this line redoes it).
    set_state(history, SCAN_KEY, {"$max": {"watermark": stamped - SEAL_GRACE}})
    archive_batches.mark_folded(history, archive, batches, now=now)
    history[ORDERS_HOURLY].delete_many({"hour": {"$lt": retain_from}})
    history[HOURS].delete_many({"hour": {"$lt": retain_from}})
    orders_hourly.drop_old_minutes(history, now=now)
    shipments.prune(history, now=now)
    return {
        "order_hours_built": built["hours"],
        "order_hours_from_archive": built["from_archive"],
        "order_hours_from_rollup": built["from_rollup"],
        "shipments_from_archive": copied_cold,
        "shipments_from_mongodb": copied_hot,
        "archive_batches_folded": len(batches),
        "seconds": round(time.perf_counter() - started, 4),
    }


def _hours_with_late_orders(db: Database, history: Database, watermark: dt.datetime) -> set[dt.datetime]:
    """Hours of orders ingested since the watermark that their hour's last build may not have seen: a build at
    ``built_at`` saw every order ingested before ``built_at − SEAL_GRACE`` (the watermark's own assumption), so a
    seed or backfill written just before a build does not rebuild every hour again on the next run."""
    pipeline = [{"$match": {"ingested_at": {"$gte": watermark}, "order_ts": {"$type": "date"}}},
                {"$group": {"_id": {"$dateTrunc": {"date": "$order_ts", "unit": "hour"}},
                            "last_ingested": {"$max": "$ingested_at"}}}]
    last_ingested = {utc(doc["_id"]): utc(doc["last_ingested"]) for doc in db[ORDERS.collection].aggregate(pipeline)}
    built_at = {utc(doc["hour"]): utc(doc.get("stamped_at") or doc.get("built_at")) for doc in history[HOURS].find(
        {"kind": "orders", "hour": {"$in": list(last_ingested)}}, {"hour": 1, "built_at": 1, "stamped_at": 1})}
    return {hour for hour, ingested in last_ingested.items()
            if built_at.get(hour) is None or ingested >= built_at[hour] - SEAL_GRACE}


def rebuild_hour(db: Database, archive: ArchiveStore | None, hour: dt.datetime, *, now: dt.datetime) -> dict:
    """One hour on demand (the partitioned assets, a backfill from the UI): its orders and its shipments."""
    history = history_database(db)
    ensure_indexes(history)
    built = orders_hourly.build_hours(history, db, archive, [hour], now=now)
    end = hour + dt.timedelta(hours=1)
    hot = shipments.sync_hot(history, db, {"shipment_ts": {"$gte": hour, "$lt": end}})
    copied = shipments.sync_cold_hour(history, archive, hour, skip=shipments.hot_ids(db)) if archive else 0
    return {"orders": built["orders"], "shipments_from_mongodb": hot, "shipments_from_archive": copied}
