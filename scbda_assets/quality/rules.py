"""Data-quality rules of the hot store (SPEC §6, §10), as MongoDB queries: pure data, no Dagster.

A document is *valid* when it matches its collection's ``$jsonSchema`` (the contract's: exactly its fields, BSON
types right, within the value rules) and breaks none of the business rules. MongoDB evaluates both server-side, so a
check costs one counting pass and never pulls documents into Python. Malformed documents are counted and reported, never deleted here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bson import ObjectId

from scbda_assets.contract import SPECS
from scbda_assets.domain.reference import DCS, REGIONS, SKUS, SUPPLIERS

# The collections' $jsonSchema with the value rules, derived from the contract (one definition of each type).
FACT_SCHEMAS: dict[str, dict] = {spec.collection: spec.quality_schema() for spec in SPECS}

# The event-time field of each fact collection.
EVENT_TIME_FIELD = {spec.collection: spec.event_field for spec in SPECS}


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    description: str
    violation: dict  # a MongoDB filter matching the documents that break the rule


def _unknown(field: str, ids: list[str]) -> dict:
    # Only well-typed ids count here; a missing or mistyped id is a schema failure, not a dangling reference.
    return {field: {"$type": "string", "$nin": ids}}


def _numeric_expr(fields: tuple[str, ...], comparison: dict) -> dict:
    # Arithmetic only on numbers: a malformed document is the schema check's to report, never a crashed query.
    # (Aggregation $and short-circuits, so the comparison never sees a string.)
    return {"$expr": {"$and": [*({"$isNumber": f"${field}"} for field in fields), comparison]}}


_SKU_IDS = [s.sku_id for s in SKUS]
_DC_IDS = [d.dc_id for d in DCS]
_REGION_IDS = [r.region_id for r in REGIONS]
_SUPPLIER_IDS = [s.supplier_id for s in SUPPLIERS]

BUSINESS_RULES: dict[str, tuple[Rule, ...]] = {
    "orders_fact": (
        Rule("fulfilled_le_requested", "fulfilled_qty <= requested_qty",
             _numeric_expr(("fulfilled_qty", "requested_qty"), {"$gt": ["$fulfilled_qty", "$requested_qty"]})),
        Rule("lost_is_shortfall", "lost_qty = requested_qty - fulfilled_qty",
             _numeric_expr(("lost_qty", "requested_qty", "fulfilled_qty"),
                           {"$ne": ["$lost_qty", {"$subtract": ["$requested_qty", "$fulfilled_qty"]}]})),
        Rule("known_sku", "sku_id exists in skus_dim", _unknown("sku_id", _SKU_IDS)),
        Rule("known_dc", "dc_id exists in dcs_dim", _unknown("dc_id", _DC_IDS)),
        Rule("known_region", "region_id exists in regions_dim", _unknown("region_id", _REGION_IDS)),
    ),
    "shipments_fact": (
        Rule("known_sku", "sku_id exists in skus_dim", _unknown("sku_id", _SKU_IDS)),
        Rule("known_dc", "dc_id exists in dcs_dim", _unknown("dc_id", _DC_IDS)),
        Rule("known_supplier", "supplier_id exists in suppliers_dim", _unknown("supplier_id", _SUPPLIER_IDS)),
        Rule("received_has_arrival", "status 'received' iff actual_arrival_ts is set",
             {"$or": [{"status": "received", "actual_arrival_ts": None},
                      {"status": "in_transit", "actual_arrival_ts": {"$type": "date"}}]}),
    ),
    "inventory_fact": (
        Rule("no_negative_stock", "on_hand_qty >= 0 and on_order_qty >= 0",
             {"$or": [{"on_hand_qty": {"$lt": 0}}, {"on_order_qty": {"$lt": 0}}]}),
        Rule("known_sku", "sku_id exists in skus_dim", _unknown("sku_id", _SKU_IDS)),
        Rule("known_dc", "dc_id exists in dcs_dim", _unknown("dc_id", _DC_IDS)),
    ),
    "inventory_state": (
        Rule("no_negative_stock", "on_hand_qty >= 0 and on_order_qty >= 0",
             {"$or": [{"on_hand_qty": {"$lt": 0}}, {"on_order_qty": {"$lt": 0}}]}),
    ),
}


def schema_violation(collection: str) -> dict:
    """Filter for the documents of ``collection`` that do not match its schema."""
    return {"$nor": [{"$jsonSchema": FACT_SCHEMAS[collection]}]}


def any_violation(collection: str) -> dict:
    """Filter for the documents that are invalid in any way (schema or business rule)."""
    clauses = [rule.violation for rule in BUSINESS_RULES.get(collection, ())]
    if collection in FACT_SCHEMAS:
        clauses.append(schema_violation(collection))
    return {"$or": clauses}


# New documents are checked: the checks' cost stays that of a window, however large the hot store grows.
# Twice the quality schedule's interval, so a late run misses nothing.
NEW_DOCUMENTS_WINDOW = dt.timedelta(minutes=10)
# Every BSON type an _id can have but objectId (arrays cannot be ids; minKey/maxKey would widen the index bounds).
_NON_OBJECT_ID_TYPES = ["double", "string", "object", "binData", "bool", "date", "null", "int", "timestamp", "long",
                        "decimal", "regex", "symbol", "javascript"]


def new_documents(now: dt.datetime, window: dt.timedelta = NEW_DOCUMENTS_WINDOW) -> dict:
    """Filter for the documents inserted within ``window`` before ``now`` (their ObjectId's time), plus every
    document whose ``_id`` is not an ObjectId (written from outside, always rechecked). Both branches are served
    by the ``_id`` index."""
    return {"$or": [{"_id": {"$gte": ObjectId.from_datetime(now - window)}},
                    {"_id": {"$type": _NON_OBJECT_ID_TYPES}}]}


def violation_counts(collection, scope: dict, *, rules: bool = True) -> dict[str, int]:
    """One pass over the documents in ``scope``: how many there are (``documents``), how many break the schema
    (``malformed``) and, with ``rules``, each business rule (by name) and any violation at all (``invalid``)."""
    name = collection.name
    facets = {rule.name: rule.violation for rule in BUSINESS_RULES.get(name, ())} if rules else {}
    if name in FACT_SCHEMAS:
        facets["malformed"] = schema_violation(name)
    if rules:
        facets["invalid"] = any_violation(name)
    pipeline = [{"$match": scope}, {"$facet": {
        "documents": [{"$count": "n"}],
        **{key: [{"$match": query}, {"$count": "n"}] for key, query in facets.items()},
    }}]
    row = next(collection.aggregate(pipeline, allowDiskUse=True))
    return {key: (row[key][0]["n"] if row[key] else 0) for key in row}


def quality_score(total: int, invalid: int) -> float:
    """Share of valid documents; an empty collection scores 1.0 (nothing wrong), reported with its count."""
    return 1.0 if total == 0 else (total - invalid) / total
