"""Where the history layer lives: a MongoDB database of its own, ``<db>_history`` (no Dagster here).

Derived data counts in ``dbStats.dataSize`` of the database it is in, and archival can never shrink it; the size
sensor measures ``<db>``, so the aggregates are kept out of it. What is kept is small and bounded:

- ``orders_hourly``: one row per (hour, sku_id, dc_id) with orders — at most 50 pairs × 24 × ``RETAIN_DAYS``
  (≈ 38 000 rows, a few MB), whatever the event rate;
- ``shipments``: one row per purchase order (≈ 18 a day for the whole chain), the shipment's own times, so the
  supplier sums of any window (counts, sums, sums of squares, on-time counts, delay sums) and what is in transit at
  any T come from a few hundred rows;
- ``hours``: the build record of every hour (when, from which stores, how many orders);
- ``state``: the scan watermark of ``orders_fact.ingested_at``, the manifest catalog cursor, the store's earliest
  order;
- ``archive_batches``: one document per archive batch already folded in (``archive_batches.py``).
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

RETAIN_DAYS = 32  # 30 days of trends + the 7-day demand window fit with a day to spare

ORDERS_HOURLY = "orders_hourly"
SHIPMENTS = "shipments"
HOURS = "hours"
STATE = "state"

INDEXES = {
    ORDERS_HOURLY: [IndexModel([("hour", ASCENDING), ("sku_id", ASCENDING), ("dc_id", ASCENDING)], name="hour_pair")],
    SHIPMENTS: [
        IndexModel([("shipment_ts", ASCENDING)], name="shipment_ts"),
        IndexModel([("actual_arrival_ts", ASCENDING)], name="actual_arrival_ts"),
    ],
    HOURS: [IndexModel([("kind", ASCENDING), ("hour", ASCENDING)], name="kind_hour")],
}


def history_database(db: Database) -> Database:
    """The history database next to the measured one (same server, same credentials)."""
    return db.client[f"{db.name}_history"]


def ensure_indexes(history: Database) -> None:
    for name, models in INDEXES.items():
        history[name].create_indexes(models)


def get_state(history: Database, key: str) -> dict:
    return history[STATE].find_one({"_id": key}) or {}


def set_state(history: Database, key: str, update: dict) -> None:
    history[STATE].update_one({"_id": key}, update, upsert=True)
