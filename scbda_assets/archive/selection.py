"""Which hot documents are eligible, and reading them from MongoDB into Arrow (pymongoarrow), by index.

Eligible for a frozen ``cutoff`` (exclusive): event time < cutoff; shipments also not ``in_transit`` and not
received at or after the cutoff (the supplier KPI still needs a fresh receipt; an in-transit shipment stays in
MongoDB and is archived, once received, into the hour of its ``shipment_ts`` in a later batch).

A document's hour is that of its event time; a malformed document without a date there falls back to
``ingested_at``, then to its ObjectId's creation time, so every document has an hour and can be archived.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import bson
from bson import ObjectId, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo.database import Database

from scbda_assets.archive import layout
from scbda_assets.archive.planning import HourStats, merge_hours
from scbda_assets.archive.schema import ID_COLUMN, RAW_COLUMN, SHIPMENTS, CollectionSpec

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


# Raw BSON per Arrow chunk: the run's memory stays bounded however many documents an hour holds (100x rate: ~2 GB).
CHUNK_BYTES = 64 * 2**20


@dataclasses.dataclass
class Selection:
    table: pa.Table  # spec.arrow_schema(): typed columns, _id, raw_json, event_date, hour
    source_bytes: int
    malformed_count: int

    @property
    def record_count(self) -> int:
        return self.table.num_rows


def select(db: Database, spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime) -> Selection:
    """The eligible documents of [start, min(end, cutoff)) as one Arrow table (``select_chunks``, concatenated)."""
    chunks = list(select_chunks(db, spec, start, end, cutoff))
    if not chunks:
        return Selection(spec.arrow_schema().empty_table(), 0, 0)
    return Selection(table=pa.concat_tables([c.table for c in chunks]),
                     source_bytes=sum(c.source_bytes for c in chunks),
                     malformed_count=sum(c.malformed_count for c in chunks))


def select_chunks(db: Database, spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime,
                  *, chunk_bytes: int = CHUNK_BYTES,
                  exclude_business_ids: frozenset[str] = frozenset()) -> Iterator[Selection]:
    """The eligible documents of [start, min(end, cutoff)) as Arrow tables of about ``chunk_bytes`` of BSON each
    (explicit schema, all nullable), well-formed ones first in event-time order, then the malformed ones.

    Every query is served by the event-time index: the well-formed documents of the range (pymongoarrow, streamed
    from raw batches), the malformed ones of the range, and the rare documents without a date as event time; the
    malformed ones are kept by their archive time (a document may match more than one query: kept once). The
    malformed range query reads every document of the range again, so it only runs when an index count of the
    range, taken after the typed read, says some document there was not typed. ``source_bytes`` is computed
    without asking MongoDB per document (see ``typed_bson_bytes``). Documents whose business id is in
    ``exclude_business_ids`` (a writer may still insert them again) are left out.
    """
    collection = db[spec.collection]
    stop = min(end, cutoff)
    typed_rows = 0
    for typed in arrow_chunks(collection, well_formed_filter(spec, start, end, cutoff), spec.pymongoarrow_schema(),
                               chunk_bytes):
        typed_rows += typed.num_rows
        if exclude_business_ids:
            keep = pc.invert(pc.is_in(typed[spec.id_field], value_set=pa.array(sorted(exclude_business_ids),
                                                                               pa.string())))
            typed = typed.filter(keep)
        if typed.num_rows:
            yield Selection(_from_typed(spec, typed), typed_bson_bytes(spec, typed), 0)

    # Inserts only add documents (archive runs never overlap): equal counts mean no malformed document in range.
    in_range = collection.count_documents({spec.event_field: {"$gte": start, "$lt": stop},
                                           **eligibility_filter(spec, cutoff)})
    queries = dateless_filters(spec, cutoff)
    if in_range != typed_rows:
        queries.insert(0, malformed_filter(spec, start, end, cutoff))
    candidates = {}
    for query in queries:
        for doc in collection.find(query):
            candidates[encode_id(doc["_id"])] = doc
    malformed_docs = [doc for doc in candidates.values()
                      if (moment := _archive_time(spec, doc)) is not None and start <= moment < stop
                      and str(doc.get(spec.id_field)) not in exclude_business_ids]
    if malformed_docs:
        yield Selection(_from_documents(spec, malformed_docs), sum(len(bson.encode(doc)) for doc in malformed_docs),
                        len(malformed_docs))


def split_range(db: Database, spec: CollectionSpec, start: dt.datetime, end: dt.datetime, cutoff: dt.datetime,
                parts: int, *, min_documents: int = 100_000) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, min(end, cutoff)) cut at event-time quantiles into up to ``parts`` slices holding about as many
    documents each (found on the event-time index). Fewer than ``min_documents`` per slice: not cut."""
    stop = min(end, cutoff)
    collection, in_range = db[spec.collection], {spec.event_field: {"$gte": start, "$lt": stop}}
    total = collection.count_documents(in_range)
    parts = max(1, min(parts, total // max(1, min_documents)))
    bounds = [start]
    for k in range(1, parts):
        row = next(collection.find(in_range, {spec.event_field: 1, "_id": 0}).sort(spec.event_field, 1)
                   .skip(total * k // parts).limit(1), None)
        if row is not None and bounds[-1] < (moment := row[spec.event_field].astimezone(dt.UTC)) < stop:
            bounds.append(moment)
    bounds.append(stop)
    return list(zip(bounds[:-1], bounds[1:]))


def arrow_chunks(collection, query: dict, schema, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.Table]:
    """``find_arrow_all``, streamed: a new Arrow table every ``chunk_bytes`` of raw BSON batches."""
    from pymongoarrow.context import PyMongoArrowContext

    projection = {name: True for name in schema}
    context, pending = None, 0
    for batch in collection.find_raw_batches(query, projection=projection):
        if context is None:
            context = PyMongoArrowContext(schema, codec_options=collection.codec_options)
        context.process_bson_stream(batch)
        pending += len(batch)
        if pending >= chunk_bytes:
            yield context.finish()
            context, pending = None, 0
    if context is not None:
        yield context.finish()


_VALUE_BYTES = {"double": 8, "date": 8}


def typed_bson_bytes(spec: CollectionSpec, typed: pa.Table) -> int:
    """BSON size of well-formed documents, computed from their values (vectorized; no ``$bsonSize`` per document).

    A well-formed document holds exactly ``_id`` + the spec's fields, so its size follows from the values:
    document header 5 bytes; per field 1 (type) + name + 1 (NUL) + value: ObjectId 12, double/date 8, string
    4 + UTF-8 bytes + 1, int 4 when it fits 32 bits else 8 (how drivers store Python/JSON integers), null 0.
    Exact for documents written that way; a 32-bit value stored as a 64-bit long counts 4 bytes short, and a
    nullable field that is absent (not null) counts its name's bytes too much.
    """
    rows = typed.num_rows
    if rows == 0:
        return 0
    total = rows * (5 + 1 + len("_id") + 1 + 12)
    for name, kind in spec.fields:
        column = typed[name]
        present = rows - column.null_count
        total += rows * (1 + len(name.encode()) + 1)
        if kind == "string":
            total += int(pc.sum(pc.binary_length(column)).as_py() or 0) + 5 * present
        elif kind == "int":
            fits = pc.and_(pc.greater_equal(column, -(2**31)), pc.less(column, 2**31))
            small = int(pc.sum(pc.cast(fits, pa.int64())).as_py() or 0)
            total += 4 * small + 8 * (present - small)
        else:
            total += _VALUE_BYTES[kind] * present
    return total


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


def _archive_time(spec: CollectionSpec, doc: dict) -> dt.datetime | None:
    """Event time, else ingested_at, else the ObjectId's creation time (None: no time at all, never archived)."""
    for candidate in (doc.get(spec.event_field), doc.get("ingested_at")):
        if isinstance(candidate, dt.datetime):
            return candidate.astimezone(dt.UTC)
    return doc["_id"].generation_time if isinstance(doc["_id"], ObjectId) else None


def _from_documents(spec: CollectionSpec, docs: list[dict]) -> pa.Table:
    schema = spec.arrow_schema()
    rows = []
    for doc in docs:
        row = {ID_COLUMN: encode_id(doc["_id"])}
        row.update({name: _coerce(doc.get(name), kind) for name, kind in spec.fields})
        row[RAW_COLUMN] = json_util.dumps(doc, json_options=_JSON_OPTIONS)
        moment = _archive_time(spec, doc)  # never None: select() only keeps documents with a time in range
        row["event_date"], row["hour"] = f"{moment:%Y-%m-%d}", f"{moment:%H}"
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def eligible_hour_pipeline(spec: CollectionSpec, horizon: dt.datetime, *, dateless_only: bool = False) -> list[dict]:
    """Per hour before the horizon: eligible documents and their exact BSON bytes (``$bsonSize``, read per document).

    Used where documents are few: shipments (the in-transit condition needs each document) and the documents
    without a date as event time (``dateless_only``). Every branch of the ``$or`` is served by the event-time index
    (``{$not: {$type: "date"}}`` would scan it all)."""
    branches = dateless_conditions(spec) if dateless_only else [{spec.event_field: {"$lt": horizon}},
                                                                 *dateless_conditions(spec)]
    return [
        {"$match": {"$or": branches, **eligibility_filter(spec, horizon)}},
        {"$project": {"t": {"$dateTrunc": {"date": hour_expression(spec), "unit": "hour"}},
                      "size": {"$bsonSize": "$$ROOT"}}},
        {"$match": {"t": {"$ne": None, "$lt": horizon}}},
        {"$group": {"_id": "$t", "documents": {"$sum": 1}, "bytes": {"$sum": "$size"}}},
        {"$sort": {"_id": 1}},
    ]


def eligible_hour_stats(db: Database, spec: CollectionSpec, horizon: dt.datetime) -> list[HourStats]:
    """The planning input: eligible documents and BSON bytes per hour before the horizon, at a cost that stays
    small however large the hot store is (the sensor asks every minute, within Dagster's 60 s tick limit).

    Orders and inventory: documents per hour are index counts (``COUNT_SCAN``, no document read) and bytes are
    counts × the collection's ``avgObjSize`` — an estimate, which is all the low-water arithmetic needs; the
    manifest's ``source_bytes`` are exact. Sizing 10 M documents with ``$bsonSize`` took over 60 s at 100× the
    default rate, so the sensor timed out every tick and never archived. Shipments (few, and the in-transit
    condition needs each document) and dateless documents (rare) are sized exactly.
    """
    collection = db[spec.collection]

    def exact(pipeline: list[dict]) -> list[HourStats]:
        return [HourStats(row["_id"].astimezone(dt.UTC), row["documents"], row["bytes"])
                for row in collection.with_options(codec_options=_CLAMPED).aggregate(pipeline, allowDiskUse=True)]

    if eligibility_filter(spec, horizon):
        return exact(eligible_hour_pipeline(spec, horizon))
    counted: list[HourStats] = []
    hours = occupied_hours(collection, spec, horizon)
    if hours:
        average = int(db.command("collStats", spec.collection).get("avgObjSize", 0))
        for hour in hours:
            documents = collection.count_documents({spec.event_field: {"$gte": hour, "$lt": hour + layout.HOUR}})
            counted.append(HourStats(hour, documents, documents * average))
    return merge_hours([counted, exact(eligible_hour_pipeline(spec, horizon, dateless_only=True))])


# Dates outside what Python can hold (year 0, year 10000+) are clamped when read, so they never crash a tick.
_CLAMPED = CodecOptions(tz_aware=True, tzinfo=dt.UTC, datetime_conversion=DatetimeConversion.DATETIME_CLAMP)


def occupied_hours(collection, spec: CollectionSpec, horizon: dt.datetime, limit: int = 100_000) -> list[dt.datetime]:
    """The hours before the horizon that hold at least one document with a date event time, oldest first: one index
    seek per occupied hour (the next event time at or after the previous hour's end), never a walk over every hour
    since the oldest document (one document from 1970 costs one seek, not 500 000 counts)."""
    clamped = collection.with_options(codec_options=_CLAMPED)
    hours: list[dt.datetime] = []
    bound: dict = {"$lt": horizon}
    while len(hours) < limit:
        row = clamped.find_one({spec.event_field: {**bound, "$type": "date"}}, {spec.event_field: 1, "_id": 0},
                               sort=[(spec.event_field, 1)])
        if row is None:
            break
        hour = layout.floor_hour(row[spec.event_field])
        hours.append(hour)
        try:
            bound = {"$gte": hour + layout.HOUR, "$lt": horizon}
        except OverflowError:  # the last representable hour
            break
    return hours
