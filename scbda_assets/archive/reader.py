"""Reading the eligible documents of a range from MongoDB into Arrow tables of the archive schema (pymongoarrow).

Well-formed documents are read typed, by the event-time index and streamed in chunks (memory stays bounded); the
malformed ones (see ``eligibility``) are read as documents and kept whole as raw JSON next to what fits the columns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import bson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bson import ObjectId, json_util
from pymongo.database import Database

from scbda_assets.archive.eligibility import (archive_time, dateless_filters, eligibility_filter, malformed_filter,
                                              well_formed_filter)
from scbda_assets.archive.schema import ID_COLUMN, RAW_COLUMN, CollectionSpec
from scbda_assets.mongo_arrow import CHUNK_BYTES, arrow_chunks

_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=dt.UTC)


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
                      if (moment := archive_time(spec, doc)) is not None and start <= moment < stop
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


_VALUE_BYTES = {"number": 8, "date": 8}


def typed_bson_bytes(spec: CollectionSpec, typed: pa.Table) -> int:
    """BSON size of well-formed documents, computed from their values (vectorized; no ``$bsonSize`` per document).

    A well-formed document holds exactly ``_id`` + the spec's fields, so its size follows from the values:
    document header 5 bytes; per field 1 (type) + name + 1 (NUL) + value: ObjectId 12, double/date 8, string
    4 + UTF-8 bytes + 1, int 4 when it fits 32 bits else 8 (how drivers store Python/JSON integers), null 0.
    Exact for documents written that way; a 32-bit value stored as a 64-bit long counts 4 bytes short, and an
    integer stored as an int in a number field counts 4 bytes too many.
    """
    rows = typed.num_rows
    if rows == 0:
        return 0
    total = rows * (5 + 1 + len("_id") + 1 + 12)
    for name, kind in spec.kinds.items():
        column = typed[name]
        present = rows - column.null_count
        total += rows * (1 + len(name.encode()) + 1)
        if kind == "string":
            total += int(pc.sum(pc.binary_length(column)).as_py() or 0) + 5 * present
        elif kind == "whole":
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
    if kind == "whole":
        return value if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63 else None
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "date":
        return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo else None
    raise ValueError(kind)


def _from_documents(spec: CollectionSpec, docs: list[dict]) -> pa.Table:
    schema = spec.arrow_schema()
    rows = []
    for doc in docs:
        row = {ID_COLUMN: encode_id(doc["_id"])}
        row.update({name: _coerce(doc.get(name), kind) for name, kind in spec.kinds.items()})
        row[RAW_COLUMN] = json_util.dumps(doc, json_options=_JSON_OPTIONS)
        moment = archive_time(spec, doc)  # never None: select() only keeps documents with a time in range
        row["event_date"], row["hour"] = f"{moment:%Y-%m-%d}", f"{moment:%H}"
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)
