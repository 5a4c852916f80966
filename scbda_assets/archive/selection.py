"""Which hot documents are eligible, and reading them from MongoDB into Arrow (pymongoarrow).

Eligible for a frozen ``cutoff`` (exclusive): event time < cutoff; shipments also not ``in_transit`` and not
received at or after the cutoff (the supplier KPI still needs a fresh receipt; an in-transit shipment stays in
MongoDB and is archived, once received, into the hour of its ``shipment_ts`` in a later batch).

A document's hour is that of its event time; a malformed document without a date there falls back to
``ingested_at``, then to its ObjectId's creation time, so every document has an hour and can be archived.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import bson
from bson import ObjectId, json_util
from pymongo.database import Database

from scbda_assets.archive.schema import ID_COLUMN, RAW_COLUMN, SHIPMENTS, CollectionSpec

_SIZE_COLUMN = "_bson_size"
_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=dt.UTC)


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
    time = hour_expression(spec)
    return {
        "$nor": [{"$jsonSchema": spec.json_schema()}],
        "$expr": {"$and": [{"$gte": [time, start]}, {"$lt": [time, min(end, cutoff)]}]},
        **eligibility_filter(spec, cutoff),
    }


@dataclasses.dataclass
class Selection:
    table: pa.Table  # spec.arrow_schema(): typed columns, _id, raw_json, event_date, hour
    source_bytes: int
    malformed_count: int

    @property
    def record_count(self) -> int:
        return self.table.num_rows


def select(db: Database, spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime) -> Selection:
    """The eligible documents of [start, min(end, cutoff)) as one Arrow table (explicit schema, all nullable)."""
    from pymongoarrow.api import aggregate_arrow_all

    collection = db[spec.collection]
    pipeline = [
        {"$match": well_formed_filter(spec, start, end, cutoff)},
        {"$addFields": {_SIZE_COLUMN: {"$bsonSize": "$$ROOT"}}},
    ]
    typed = aggregate_arrow_all(collection, pipeline, schema=spec.pymongoarrow_schema({_SIZE_COLUMN: pa.int64()}),
                                allowDiskUse=True)
    source_bytes = int(pc.sum(typed[_SIZE_COLUMN]).as_py() or 0) if typed.num_rows else 0
    well_formed = _from_typed(spec, typed)

    malformed_docs = list(collection.find(malformed_filter(spec, start, end, cutoff)))
    source_bytes += sum(len(bson.encode(doc)) for doc in malformed_docs)
    malformed = _from_documents(spec, malformed_docs)
    table = pa.concat_tables([well_formed, malformed]) if malformed.num_rows else well_formed
    return Selection(table=table, source_bytes=source_bytes, malformed_count=malformed.num_rows)


def object_id_hex(ids: pa.Array) -> pa.Array:
    """pymongoarrow's 12-byte ObjectId column → 24-char hex strings, vectorized."""
    if len(ids) == 0:
        return pa.array([], pa.string())
    storage = ids.storage if isinstance(ids, pa.ExtensionArray) else ids
    storage = storage.cast(pa.binary(12)) if storage.type != pa.binary(12) else storage
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8, count=12 * len(storage), offset=12 * storage.offset)
    hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype="S24").astype(str)
    return pa.array(hexed, pa.string())


def encode_id(value: Any) -> str:
    if isinstance(value, ObjectId):
        return str(value)
    return "json:" + json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text[5:]) if text.startswith("json:") else ObjectId(text)


def _partition_columns(times: pa.Array) -> tuple[pa.Array, pa.Array]:
    return pc.strftime(times, format="%Y-%m-%d"), pc.strftime(times, format="%H")


def _from_typed(spec: CollectionSpec, typed: pa.Table) -> pa.Table:
    schema = spec.arrow_schema()
    columns = {ID_COLUMN: object_id_hex(typed["_id"].combine_chunks())}
    for name in spec.field_names:
        columns[name] = typed[name].combine_chunks().cast(schema.field(name).type)
    columns[RAW_COLUMN] = pa.nulls(typed.num_rows, pa.string())
    columns["event_date"], columns["hour"] = _partition_columns(columns[spec.event_field])
    return pa.table(columns, schema=schema)


def _coerce(value: Any, kind: str) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63 else None
    if kind == "double":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "date":
        return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo else None
    raise ValueError(kind)


def _archive_time(spec: CollectionSpec, doc: dict) -> dt.datetime:
    for candidate in (doc.get(spec.event_field), doc.get("ingested_at")):
        if isinstance(candidate, dt.datetime):
            return candidate.astimezone(dt.UTC)
    return doc["_id"].generation_time  # the query only matched documents that have one of the three


def _from_documents(spec: CollectionSpec, docs: list[dict]) -> pa.Table:
    schema = spec.arrow_schema()
    rows = []
    for doc in docs:
        row = {ID_COLUMN: encode_id(doc["_id"])}
        row.update({name: _coerce(doc.get(name), kind) for name, kind in spec.fields})
        row[RAW_COLUMN] = json_util.dumps(doc, json_options=_JSON_OPTIONS)
        moment = _archive_time(spec, doc)
        row["event_date"], row["hour"] = f"{moment:%Y-%m-%d}", f"{moment:%H}"
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def eligible_hour_stats(db: Database, spec: CollectionSpec, horizon: dt.datetime):
    """Per hour before the horizon: eligible documents, their BSON bytes and newest ObjectId (planning input)."""
    from scbda_assets.archive.planning import HourStats

    pipeline = [
        {"$match": {"$or": [{spec.event_field: {"$lt": horizon}}, {spec.event_field: {"$not": {"$type": "date"}}}],
                    **eligibility_filter(spec, horizon)}},
        {"$project": {"t": {"$dateTrunc": {"date": hour_expression(spec), "unit": "hour"}},
                      "size": {"$bsonSize": "$$ROOT"}}},
        {"$match": {"t": {"$ne": None, "$lt": horizon}}},
        {"$group": {"_id": "$t", "documents": {"$sum": 1}, "bytes": {"$sum": "$size"}, "max_id": {"$max": "$_id"}}},
        {"$sort": {"_id": 1}},
    ]
    return [
        HourStats(row["_id"].astimezone(dt.UTC), row["documents"], row["bytes"], str(row["max_id"]))
        for row in db[spec.collection].aggregate(pipeline, allowDiskUse=True)
    ]
