"""MongoDB side of the generator: indexes, the simulation clock/state document, idempotent bulk writes.

Crash safety of one write batch (consecutive minutes [as_of, end)):
1. facts are inserted unordered; duplicate-key errors (a retried batch) are ignored, any other error raises;
2. receipts update their shipments (idempotent $set);
3. late events not yet due go to ``generator_pending`` (keyed by business id, so a retry is a no-op);
4. the state document (stock, purchase orders in transit, ``as_of``) is replaced in ONE update guarded by the
   previous ``as_of`` and the writer's claim (``generator/claim.py``) — the single point where stock changes are
   applied, so a crash before it leaves the old state (the next claim rolls back what is past it), and a second
   writer cannot apply twice;
5. ``inventory_state`` (one document per pair) is rewritten from the state, and released pending events dropped.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from bson import encode as bson_encode
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.domain import demand
from scbda_assets.domain.calibration import Policy
from scbda_assets.domain.simulation import PAIR_DC_ID, PAIR_SKU_ID, State
from scbda_assets.settings import ConfigError

STATE_COLLECTION = "generator_state"
PENDING_COLLECTION = "generator_pending"
STATE_ID = "simulation"
ORDERS_BY_INGESTION = "ingested_at_order_ts"

INDEXES: dict[str, list[IndexModel]] = {
    "orders_fact": [
        IndexModel([("order_id", ASCENDING)], unique=True, name="order_id_unique"),
        IndexModel([("order_ts", ASCENDING)], name="order_ts"),
        IndexModel([("sku_id", ASCENDING), ("dc_id", ASCENDING), ("order_ts", ASCENDING)], name="sku_dc_order_ts"),
        # By ingestion time: the KPI minute rollup's fold (scbda_assets/kpis/rollup.py) and the history layer's
        # late-order scan (history/maintain.py). With order_ts in the key, the rollup's per-minute counts and the
        # scan are answered from the index alone, without reading a document.
        IndexModel([("ingested_at", ASCENDING), ("order_ts", ASCENDING)], name=ORDERS_BY_INGESTION),
    ],
    "shipments_fact": [
        IndexModel([("shipment_id", ASCENDING)], unique=True, name="shipment_id_unique"),
        IndexModel([("shipment_ts", ASCENDING)], name="shipment_ts"),
        IndexModel([("actual_arrival_ts", ASCENDING)], name="actual_arrival_ts"),
        # archival must never take shipments still in transit: select by status and event time
        IndexModel([("status", ASCENDING), ("shipment_ts", ASCENDING)], name="status_shipment_ts"),
    ],
    "inventory_fact": [
        IndexModel([("snapshot_id", ASCENDING)], unique=True, name="snapshot_id_unique"),
        IndexModel([("inventory_ts", ASCENDING)], name="inventory_ts"),
        IndexModel([("sku_id", ASCENDING), ("dc_id", ASCENDING), ("inventory_ts", ASCENDING)],
                   name="sku_dc_inventory_ts"),
    ],
    "inventory_state": [
        IndexModel([("sku_id", ASCENDING), ("dc_id", ASCENDING)], unique=True, name="sku_dc_unique"),
    ],
    PENDING_COLLECTION: [IndexModel([("release_at", ASCENDING)], name="release_at")],
}


# Indexes an earlier version created that the one above replaces (dropped so writes stop maintaining them).
SUPERSEDED_INDEXES = {"orders_fact": ("ingested_at",)}


def ensure_indexes(db: Database) -> None:
    for name, models in INDEXES.items():
        db[name].create_indexes(models)
    for name, superseded in SUPERSEDED_INDEXES.items():
        existing = db[name].index_information()
        for index in superseded:
            if index in existing:
                db[name].drop_index(index)


def insert_ignoring_duplicates(collection, docs: list[dict]) -> int:
    """Unordered bulk insert; returns how many were new. Only duplicate-key errors are tolerated.

    Documents without an ``_id`` go as pre-encoded BSON (``RawBSONDocument``): pymongo then skips its per-document
    type checks and client-side ObjectId, and the server assigns the same kind of ``_id`` (an ObjectId) — about a
    third less client CPU per event in a backfill (docs/generator.md). The dicts are left unchanged.
    """
    if not docs:
        return 0
    payload = [doc if "_id" in doc else RawBSONDocument(bson_encode(doc)) for doc in docs]
    try:
        collection.insert_many(payload, ordered=False)
        return len(payload)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [e for e in errors if e.get("code") != 11000]
        if other or exc.details.get("writeConcernErrors"):
            raise
        return exc.details.get("nInserted", 0)


def apply_receipts(db: Database, received: list[tuple[str, dt.datetime]]) -> int:
    """Mark shipments received (also a still-pending late shipment document). Idempotent."""
    if not received:
        return 0
    result = db.shipments_fact.bulk_write(
        [UpdateOne({"shipment_id": sid}, {"$set": {"status": "received", "actual_arrival_ts": ts}})
         for sid, ts in received],
        ordered=False,
    )
    db[PENDING_COLLECTION].bulk_write(
        [UpdateOne({"_id": sid}, {"$set": {"doc.status": "received", "doc.actual_arrival_ts": ts}})
         for sid, ts in received],
        ordered=False,
    )
    return result.matched_count


def store_pending(db: Database, pending: list[tuple[str, str, dt.datetime, dict]]) -> None:
    """Late events (collection, id, release time, document) to be written once the stream reaches their time."""
    if not pending:
        return
    docs = [{"_id": key, "collection": coll, "release_at": release, "doc": doc} for coll, key, release, doc in pending]
    insert_ignoring_duplicates(db[PENDING_COLLECTION], docs)


def due_pending(db: Database, before: dt.datetime) -> dict[str, list[dict]]:
    """Pending late events whose release time is before ``before``, by collection."""
    due: dict[str, list[dict]] = {}
    for entry in db[PENDING_COLLECTION].find({"release_at": {"$lt": before}}):
        due.setdefault(entry["collection"], []).append(entry["doc"])
    return due


def drop_released(db: Database, before: dt.datetime) -> None:
    db[PENDING_COLLECTION].delete_many({"release_at": {"$lt": before}})


class StateError(ConfigError):
    """The stored generator state cannot be read. ``str(error)`` is one line saying how to recover."""


def load_state(db: Database) -> State | None:
    doc = db[STATE_COLLECTION].find_one({"_id": STATE_ID})
    if doc is None:
        return None
    try:
        orders = doc.get("purchase_orders", [])
        state = State(
            as_of=_dt64(doc["as_of"]),
            on_hand=np.array(doc["on_hand"], dtype=np.int64),
            po_id=np.array([str(o["shipment_id"]) for o in orders], dtype=object),
            po_pair=np.array([o["pair"] for o in orders], dtype=np.int64),
            po_qty=np.array([o["quantity"] for o in orders], dtype=np.int64),
            po_arrival=np.array([_dt64(o["arrival_ts"]) for o in orders], dtype="datetime64[ms]"),
        )
        if state.on_hand.shape != (demand.N_PAIRS,) or np.any(state.on_hand < 0):
            raise ValueError(f"on_hand must be {demand.N_PAIRS} non-negative integers")
        if len(state.po_pair) and (state.po_pair.min() < 0 or state.po_pair.max() >= demand.N_PAIRS):
            raise ValueError("purchase order pair out of range")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(
            f"{db.name}.{STATE_COLLECTION} is malformed ({type(exc).__name__}: {exc}); the stream cannot continue "
            f"from it: restore that document from a backup, or start a new stream in another database "
            f"(SCBDA_MONGO_DB) with a new archive root (a new stream never rewrites stored time)"
        ) from None
    return state


def state_fields(state: State, info: dict) -> dict:
    """The state document's fields (without ``_id`` and ``claim``)."""
    return {
        "as_of": to_datetime(state.as_of),
        "on_hand": state.on_hand.tolist(),
        "purchase_orders": [
            {"shipment_id": sid, "pair": pair, "quantity": qty, "arrival_ts": ts}
            for sid, pair, qty, ts in zip(state.po_id.tolist(), state.po_pair.tolist(), state.po_qty.tolist(),
                                          [to_datetime(t) for t in state.po_arrival])
        ],
        **info,
    }


def save_state(db: Database, state: State, previous_as_of: np.datetime64 | None, info: dict, *,
               claim_token: str | None = None) -> bool:
    """Commit: replace the state if it is still at ``previous_as_of`` and (``claim_token``) still claimed by this
    writer — the claim is kept for its next batch. None as ``previous_as_of``: only if there is no state.
    False if the clock moved or the claim is another writer's."""
    doc = state_fields(state, info)
    collection = db[STATE_COLLECTION]
    if previous_as_of is None:
        try:
            collection.insert_one({"_id": STATE_ID, **doc})
            return True
        except DuplicateKeyError:
            return False
    guard = {"_id": STATE_ID, "as_of": to_datetime(previous_as_of)}
    if claim_token is not None:
        guard["claim.token"] = claim_token
    result = collection.update_one(guard, {"$set": doc})
    return result.matched_count == 1


def newest_event_time(db: Database) -> dt.datetime | None:
    """The newest event time of any fact in MongoDB (through the event-time indexes)."""
    times = []
    for name, field in (("orders_fact", "order_ts"), ("shipments_fact", "shipment_ts"),
                        ("inventory_fact", "inventory_ts")):
        doc = db[name].find_one({field: {"$type": "date"}}, {field: 1}, sort=[(field, -1)])
        if doc:
            value = doc[field]
            times.append(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return max(times, default=None)


def write_inventory_state(db: Database, state: State, policy: Policy) -> None:
    """One document per (sku_id, dc_id): the stock after the last applied interval (``updated_at`` = its end)."""
    on_order = state.on_order
    updated_at = to_datetime(state.as_of)
    db.inventory_state.bulk_write(
        [
            UpdateOne(
                {"sku_id": PAIR_SKU_ID[p], "dc_id": PAIR_DC_ID[p]},
                {"$set": {
                    "on_hand_qty": int(state.on_hand[p]),
                    "on_order_qty": int(on_order[p]),
                    "safety_stock": int(policy.safety_stock[p]),
                    "reorder_point": int(policy.reorder_point[p]),
                    "updated_at": updated_at,
                }},
                upsert=True,
            )
            for p in range(demand.N_PAIRS)
        ],
        ordered=False,
    )


def to_datetime(value: np.datetime64) -> dt.datetime:
    return value.astype("datetime64[ms]").item().replace(tzinfo=dt.UTC)


def _dt64(value: dt.datetime) -> np.datetime64:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(value, "ms")


def collection_counts(db: Database) -> dict[str, int]:
    return {name: db[name].estimated_document_count() for name in (*FACT_COLLECTIONS, "inventory_state")}


def inventory_state_preview(db: Database, limit: int = 5) -> list[dict]:
    """The first ``limit`` (sku_id, dc_id) stock documents, without ``_id``."""
    return list(db.inventory_state.find({}, {"_id": 0}).sort([("sku_id", 1), ("dc_id", 1)]).limit(limit))




def upsert_dimension(db: Database, collection: str, docs: list[dict], key: str) -> dict[str, int]:
    """Upsert dimension documents by business key (a config change reaches an existing database)."""
    db[collection].create_index([(key, ASCENDING)], unique=True, name=f"{key}_unique")
    result = db[collection].bulk_write(
        [UpdateOne({key: doc[key]}, {"$set": doc}, upsert=True) for doc in docs], ordered=False
    )
    return {"matched": result.matched_count, "modified": result.modified_count, "upserted": result.upserted_count}


def dimensions_current(db: Database, expected: dict[str, tuple[str, list[dict]]]) -> bool:
    """True when every dimension collection holds the expected documents (fields compared, extra docs allowed)."""
    for collection, (key, docs) in expected.items():
        stored = {d[key]: d for d in db[collection].find({}, {"_id": 0})}
        for doc in docs:
            if any(stored.get(doc[key], {}).get(field) != value for field, value in doc.items()):
                return False
    return True


def ensure_dimensions(db: Database, expected: dict[str, tuple[str, list[dict]]]) -> bool:
    """Upsert the dimensions unless they are already current; True when something was written."""
    if dimensions_current(db, expected):
        return False
    for collection, (key, docs) in expected.items():
        upsert_dimension(db, collection, docs, key)
    return True
