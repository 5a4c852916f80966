"""Per-(sku, dc, order minute, ingest minute) order sums kept inside MongoDB, so the order side of a KPI run reads
a few thousand pre-summed rows instead of every order of the window (SPEC §9: KPI cost independent of the rate).

Maintenance (``fold_new_orders``), once per KPI run, before the window is read:

1. the documents of every ingest minute >= the watermark are counted per minute, from the ``(ingested_at,
   order_ts)`` index alone (milliseconds, whatever the rate). Only minutes whose count changed since the last fold
   (new minutes, minutes still being written) are folded again: their orders are grouped by (sku_id, dc_id, order
   minute, ingest minute) and written with ``$merge``. Before the counts, every fold re-read the whole ``SEAL_GRACE``
   (the new minute and the one or two before it): at 100x, 450 k orders per tick for 125 k new ones;
2. a merged row replaces the stored one unless the stored one counts more orders: writers only insert, so a fold
   that saw more is the more complete one, and two folds at once (a scheduled run beside ``scbda kpis``) leave the
   more complete rows whatever order they finish in (an order archived after it was folded stays counted). A
   re-run, or a run after a crash between any two steps, writes the same sums and never double counts. A late
   order (written up to 15 min after its order_ts) lands in a new ingest minute, so it is counted once, in its own
   order minute;
3. the watermark moves to the start of the newest ingest minute that is sealed: minutes that ended more than
   ``SEAL_GRACE`` before the newest ingest stamp seen (and before ``now``): stamps are compared with stamps, so
   a writer's clock minutes behind the KPI host's seals nothing early (``sealed_before``). This assumes a writer's documents are visible within ``SEAL_GRACE`` of
   the ``ingested_at`` it stamped (the generator stamps a batch just before writing it). The counts of the minutes
   after it are kept with the watermark; a count only ever lags what was folded (it is taken before the fold), so
   a lagging count costs one more fold, never a missed order;
4. rows of ingest minutes older than ``HORIZON`` (or than a restart, see ``RESTART_BACK``) are pruned (the
   archive only deletes orders older than its 60-minute safety horizon, and KPI windows are 15 min), and
   ``covered_from`` moves up with them.

A window [start, end) is answered from the rollup when start >= ``covered_from`` (every order of it was ingested
after the rollup started, as ``ingested_at`` >= ``order_ts`` for every order); otherwise, e.g. an on-demand as-of
far in the past, the KPI reads ``orders_fact`` directly. The minute rows cover the whole minutes of the window;
the partial minutes at its edges (an as-of that is not a minute boundary) come straight from ``orders_fact`` in
the same aggregation (``$unionWith``), so the result equals the direct computation exactly.

The watermark and ``covered_from`` are the document ``{_id: "_state"}`` of the rollup collection (rows have a
document ``_id``; the row filters never match the state). Malformed orders are skipped by the same ``$match``
type filters as the direct read (``pushdown.ORDER_TYPES``).
No Dagster here.
"""

from __future__ import annotations

import datetime as dt

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from scbda_assets.kpis import pushdown
from scbda_assets.timeutil import MINUTE, ceil_minute, floor_hour, floor_minute, utc  # noqa: F401 (rollup.MINUTE)

ROLLUP = "orders_minute_rollup"
# The fold's progress lives in the rollup collection itself, so dropping the collection resets both together.
STATE_ID = "_state"
HORIZON = dt.timedelta(hours=2)
# A new rollup (or one not folded for this long) starts at the start of the hour this far back: enough for every
# KPI window and the hour in progress, and the first run after a deployment folds at most 90 minutes of orders, not
# the whole hot store.
RESTART_BACK = dt.timedelta(minutes=30)
SEAL_GRACE = dt.timedelta(seconds=60)

INDEXES = [
    IndexModel([("order_minute", ASCENDING)], name="order_minute"),
    IndexModel([("ingest_minute", ASCENDING)], name="ingest_minute"),
]


def ingest_counts_pipeline(since: dt.datetime) -> list[dict]:
    """Documents per ingest minute >= ``since``, of any shape: a change detector answered from the index alone."""
    return [{"$match": {"ingested_at": {"$gte": since}}},
            {"$group": {"_id": {"$dateTrunc": {"date": "$ingested_at", "unit": "minute"}}, "documents": {"$sum": 1}}}]


# $merge's whenMatched: keep the stored row when it counts more orders (step 2 of the module docstring).
KEEP_THE_MORE_COMPLETE = [{"$replaceWith": {"$cond": [{"$gt": ["$orders", "$$new.orders"]}, "$$ROOT", "$$new"]}}]


def fold_pipeline(since: dt.datetime, orders_from: dt.datetime | None = None) -> list[dict]:
    """Recompute every ingest minute >= ``since`` (a minute boundary) from the orders and merge it into the rollup.
    Only orders with ``order_ts`` >= ``orders_from`` (the coverage start) are folded: a backfill ingested just now
    but timed days ago is no KPI window's business, and folding it made the rollup grow to half of orders_fact."""
    minute_of = {
        "order_minute": {"$dateTrunc": {"date": "$order_ts", "unit": "minute"}},
        "ingest_minute": {"$dateTrunc": {"date": "$ingested_at", "unit": "minute"}},
    }
    return [
        # (the range on ingested_at replaces its $type filter: a range only matches dates)
        {"$match": {**pushdown.ORDER_TYPES, "ingested_at": {"$gte": since},
                    "order_ts": {"$gte": orders_from} if orders_from else {"$type": "date"}}},
        {"$group": {"_id": {"sku_id": "$sku_id", "dc_id": "$dc_id", **minute_of},
                    **pushdown.order_sums_of_documents()}},
        {"$set": {"sku_id": "$_id.sku_id", "dc_id": "$_id.dc_id", "order_minute": "$_id.order_minute",
                  "ingest_minute": "$_id.ingest_minute"}},
        {"$merge": {"into": ROLLUP, "on": "_id", "whenMatched": KEEP_THE_MORE_COMPLETE, "whenNotMatched": "insert"}},
    ]


def window_pipeline(start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per pair sums of orders in [start, end): whole minutes from the rollup, partial edge minutes from the orders.
    Runs on the rollup collection; the output has ``pushdown.ORDER_SCHEMA``."""
    whole_start, whole_end = ceil_minute(start), max(ceil_minute(start), floor_minute(end))
    pipeline: list[dict] = [{"$match": {"order_minute": {"$gte": whole_start, "$lt": whole_end}}}]
    edges = [{"order_ts": {"$gte": lo, "$lt": hi}} for lo, hi in ((start, whole_start), (whole_end, end)) if lo < hi]
    if edges:
        documents = [{"$match": {"$or": edges, **pushdown.ORDER_TYPES}},
                     {"$group": {"_id": {"sku_id": "$sku_id", "dc_id": "$dc_id"},
                                 **pushdown.order_sums_of_documents()}},
                     {"$set": {"sku_id": "$_id.sku_id", "dc_id": "$_id.dc_id"}}]
        pipeline.append({"$unionWith": {"coll": "orders_fact", "pipeline": documents}})
    return pipeline + pushdown.per_pair_orders(pushdown.order_sums_of_partials())


def sealed_before(now: dt.datetime, newest_ingest_minute: dt.datetime | None) -> dt.datetime:
    """The ingest minutes before this are sealed: ``SEAL_GRACE`` before the newest stamp the writer has made
    (its minute's end), never later than ``now`` − ``SEAL_GRACE``. The stamps are compared with the stamps, so a
    writer whose clock is minutes behind the KPI host's never has a minute sealed before it is written (SPEC §9,
    time from one clock: the stamping writer's — one stream has one writer); no stamp yet: nothing new is sealed."""
    if newest_ingest_minute is None:
        return floor_minute(now - SEAL_GRACE - HORIZON)  # below every `since`: the caller keeps its watermark
    return floor_minute(min(now, newest_ingest_minute + MINUTE) - SEAL_GRACE)


def newest_ingest_minute(db: Database) -> dt.datetime | None:
    """The minute of the newest ``ingested_at`` in orders_fact (one index seek on ``ORDERS_BY_INGESTION``)."""
    doc = db.orders_fact.find_one({"ingested_at": {"$type": "date"}}, {"_id": 0, "ingested_at": 1},
                                  sort=[("ingested_at", -1)])
    return floor_minute(utc(doc["ingested_at"])) if doc else None


def stamp_now(db: Database, now: dt.datetime) -> dt.datetime:
    """``now`` on the writer's stamp clock: no later than the end of the newest ingest minute (read it before the
    orders it is about). A build at this time saw every order stamped before it minus ``SEAL_GRACE``."""
    newest = newest_ingest_minute(db)
    return now if newest is None else min(now, newest + MINUTE)


def fold_new_orders(db: Database, *, now: dt.datetime) -> dict:
    """Bring the rollup up to date (steps 1–4 above) at wall time ``now``; returns what it did (logs, benchmark)."""
    state = db[ROLLUP].find_one({"_id": STATE_ID}) or {}
    since, covered_from = utc(state.get("watermark")), utc(state.get("covered_from"))
    stored_from = covered_from
    folded_counts = {utc(minute): count for minute, count in (state.get("ingest_counts") or [])}
    if since is None or covered_from is None or since < floor_minute(now - RESTART_BACK):
        # A new rollup, or no run for a while: start (again) at the hour of now − RESTART_BACK; coverage starts
        # there: the live window and the hour in progress of any as-of up to RESTART_BACK old (the history layer
        # reads that hour from here, at any rate), at the cost of folding at most 90 minutes of orders once.
        since = covered_from = floor_hour(now - RESTART_BACK)
        folded_counts = {}
        db[ROLLUP].create_indexes(INDEXES)
    covered_from = max(covered_from, floor_minute(now - HORIZON))
    # (counts a concurrent fold stored for minutes that are sealed by now are no change to look at)
    folded_counts = {minute: count for minute, count in folded_counts.items() if minute >= since}
    counts = {utc(doc["_id"]): doc["documents"] for doc in db.orders_fact.aggregate(ingest_counts_pipeline(since))}
    changed = sorted(minute for minute in counts.keys() | folded_counts.keys()
                     if counts.get(minute) != folded_counts.get(minute))
    if changed:
        db.orders_fact.aggregate(fold_pipeline(changed[0], covered_from))
    watermark = max(since, sealed_before(now, max(counts, default=None)))
    unsealed = sorted((minute, count) for minute, count in counts.items() if minute >= watermark)
    # Coverage first, rows second: a concurrent reader never trusts rows that are being pruned.
    db[ROLLUP].update_one({"_id": STATE_ID}, {"$max": {"watermark": watermark, "covered_from": covered_from},
                                             "$set": {"ingest_counts": unsealed}}, upsert=True)
    pruned = 0
    if covered_from != stored_from:  # a round trip saved on most runs (covered_from moves once a minute at most)
        pruned = db[ROLLUP].delete_many({"$or": [{"ingest_minute": {"$lt": covered_from}},
                                                  {"order_minute": {"$lt": covered_from}}]}).deleted_count
    return {"since": since, "watermark": watermark, "covered_from": covered_from, "pruned": pruned,
            "folded_from": changed[0] if changed else None,
            "documents_read": sum(count for minute, count in counts.items() if changed and minute >= changed[0])}


def covers(report: dict, start: dt.datetime) -> bool:
    """True when every order with order_ts >= ``start`` is in the rollup (``report``: from ``fold_new_orders``)."""
    return start >= report["covered_from"]


def orders_in_window(start: dt.datetime, end: dt.datetime) -> pushdown.Pushdown:
    return pushdown.Pushdown(ROLLUP, window_pipeline(start, end), dict(pushdown.ORDER_SCHEMA))
