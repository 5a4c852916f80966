"""Purchase orders (shipments) of hot ∪ cold, one row per ``shipment_id`` (no Dagster here).

At ~18 purchase orders a day for the whole chain, one row per shipment is smaller than hourly sums per (supplier,
sku, dc) would be, and it answers every window exactly: created / received counts, sums and sums of squares of the
planned and actual lead times, on-time counts and delay sums of any [start, end), and what is in transit at any T
(``next_receipt_ts`` needs the shipments themselves). Keyed by business id, so a shipment in both stores, or read
twice, is one row: de-duplication is the upsert. MongoDB's copy wins while it exists (a receipt updates it there;
the archive never takes a shipment in transit).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from pymongo import ReplaceOne
from pymongo.database import Database

from scbda_assets.archive.schema import SHIPMENTS as SPEC
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import cold
from scbda_assets.history.store import SHIPMENTS
from scbda_assets.timeutil import DAY, utc

FIELDS = ["shipment_id", "supplier_id", "sku_id", "dc_id", "quantity", "planned_lead_time_days", "shipment_ts",
          "expected_arrival_ts", "actual_arrival_ts"]
_SCHEMA = pa.schema([
    ("shipment_id", pa.string()), ("supplier_id", pa.string()), ("sku_id", pa.string()), ("dc_id", pa.string()),
    ("quantity", pa.int64()), ("planned_lead_time_days", pa.float64()), ("shipment_ts", pa.timestamp("ms", tz="UTC")),
    ("expected_arrival_ts", pa.timestamp("ms", tz="UTC")), ("actual_arrival_ts", pa.timestamp("ms", tz="UTC")),
])
KEEP_RECEIVED_DAYS = 40  # received shipments older than this are out of every window


def _row(doc: dict) -> dict:
    row = {name: doc.get(name) for name in FIELDS}
    for name in ("shipment_ts", "expected_arrival_ts", "actual_arrival_ts"):
        row[name] = utc(row[name])
    row["quantity"] = int(row["quantity"])
    row["planned_lead_time_days"] = float(row["planned_lead_time_days"])
    return row


def _upsert(history: Database, rows: list[dict]) -> int:
    if not rows:
        return 0
    history[SHIPMENTS].bulk_write([ReplaceOne({"_id": row["shipment_id"]}, row, upsert=True) for row in rows],
                                  ordered=False)
    return len(rows)


def sync_hot(history: Database, db: Database, match: dict | None = None) -> int:
    """Copy the well-formed shipments of MongoDB (a few hundred: the hot store holds days, not months)."""
    query = {"$jsonSchema": SPEC.json_schema(), **(match or {})}
    projection = {"_id": 0, **dict.fromkeys(FIELDS, 1)}
    return _upsert(history, [_row(doc) for doc in db[SPEC.collection].find(query, projection)])


def sync_cold_hour(history: Database, archive: ArchiveStore, hour: dt.datetime, *, skip: set[str]) -> int:
    """Copy the archived shipments of one hour folder, except ids MongoDB still holds (its copy wins)."""
    files = cold.hour_files(archive, SPEC.collection, hour)
    table = cold.read_files(archive, files, FIELDS, _SCHEMA)
    rows = [row for row in table.to_pylist() if row["shipment_id"] not in skip]
    return _upsert(history, [_row(row) for row in rows])


def hot_ids(db: Database) -> set[str]:
    return set(db[SPEC.collection].distinct("shipment_id"))


def prune(history: Database, *, now: dt.datetime) -> int:
    old = now - KEEP_RECEIVED_DAYS * DAY
    return history[SHIPMENTS].delete_many({"actual_arrival_ts": {"$lt": old}}).deleted_count


def window_rows(history: Database, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Every shipment a KPI over [start, end) can use: created before ``end`` and created in the window, received
    in or after it, or still in transit."""
    query = {"shipment_ts": {"$lt": end},
             "$or": [{"shipment_ts": {"$gte": start}}, {"actual_arrival_ts": None},
                     {"actual_arrival_ts": {"$gte": start}}]}
    return [_row(doc) for doc in history[SHIPMENTS].find(query, {"_id": 0})]
