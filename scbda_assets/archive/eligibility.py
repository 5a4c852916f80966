"""Which hot documents are eligible for an archive batch, and which hour each belongs to (MongoDB queries: pure data).

Eligible for a frozen ``cutoff`` (exclusive): event time < cutoff; shipments also not ``in_transit`` and not
received at or after the cutoff (the supplier KPI still needs a fresh receipt; an in-transit shipment stays in
MongoDB and is archived, once received, into the hour of its ``shipment_ts`` in a later batch).

A document's hour is that of its event time; a malformed document without a date there falls back to
``ingested_at``, then to its ObjectId's creation time, so every document has an hour and can be archived.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId

from scbda_assets.archive.schema import SHIPMENTS, CollectionSpec


def hour_expression(spec: CollectionSpec) -> dict:
    """Aggregation expression for a document's archive time (event time, else ingested_at, else ObjectId time)."""

    def if_date(field: str, otherwise: Any) -> dict:
        return {"$cond": [{"$eq": [{"$type": f"${field}"}, "date"]}, f"${field}", otherwise]}

    id_time = {"$convert": {"input": "$_id", "to": "date", "onError": None, "onNull": None}}
    return if_date(spec.event_field, if_date("ingested_at", id_time))


def eligibility_filter(spec: CollectionSpec, cutoff: dt.datetime) -> dict:
    if spec is not SHIPMENTS:
        return {}
    return {"status": {"$ne": "in_transit"}, "actual_arrival_ts": {"$not": {"$gte": cutoff}}}


def well_formed_filter(spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime) -> dict:
    return {spec.event_field: {"$gte": start, "$lt": min(end, cutoff)}, "$jsonSchema": spec.json_schema(),
            **eligibility_filter(spec, cutoff)}


def malformed_filter(spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime) -> dict:
    """Malformed documents whose event time is a date in the range (the event-time index serves the range)."""
    return {spec.event_field: {"$gte": start, "$lt": min(end, cutoff)}, "$nor": [{"$jsonSchema": spec.json_schema()}],
            **eligibility_filter(spec, cutoff)}


# Every BSON type but date (and null, which ``{field: None}`` finds with missing fields): a ``$type`` query on the
# event field is answered from the event-time index, unlike ``$not: {$type: "date"}`` (a collection scan).
# (``array`` and ``minKey``/``maxKey`` in the same list would widen the bounds to the whole index: an array is
# indexed by its elements, found by these queries or the range; ``minKey``/``maxKey`` get their own tight query.)
NON_DATE_TYPES = (["double", "string", "object", "binData", "undefined", "objectId", "bool", "regex", "dbPointer",
                   "javascript", "symbol", "javascriptWithScope", "int", "timestamp", "long", "decimal"],
                  ["minKey", "maxKey"])


def dateless_conditions(spec: CollectionSpec) -> list[dict]:
    """Event time missing, null or not a date, as index-served conditions (one per list of NON_DATE_TYPES)."""
    return [{spec.event_field: None}] + [{spec.event_field: {"$type": types}} for types in NON_DATE_TYPES]


def dateless_filters(spec: CollectionSpec, cutoff: dt.datetime) -> list[dict]:
    """Documents whose event time is not a date at all (rare: written from outside), whatever their hour."""
    return [{**condition, **eligibility_filter(spec, cutoff)} for condition in dateless_conditions(spec)]


def archive_time(spec: CollectionSpec, doc: dict) -> dt.datetime | None:
    """Event time, else ingested_at, else the ObjectId's creation time (None: no time at all, never archived)."""
    for candidate in (doc.get(spec.event_field), doc.get("ingested_at")):
        if isinstance(candidate, dt.datetime):
            return candidate.astimezone(dt.UTC)
    return doc["_id"].generation_time if isinstance(doc["_id"], ObjectId) else None
