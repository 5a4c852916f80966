"""What an archived collection looks like: typed columns (all nullable), the MongoDB ``_id`` and a raw-JSON column.

Derived from the contract (``scbda_assets.contract``): the same fields and the same definition of a well-formed
document. A document that fits the collection's ``$jsonSchema`` is archived in typed columns only (``raw_json``
null). A document that does not fit (wrong type, missing or extra field) is archived *as it is*: the typed columns
hold what fits, ``raw_json`` holds the whole document in relaxed Extended JSON — never dropped, never a crash.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from scbda_assets import contract

# Field kind -> Arrow type of its column (a "number" column is a double: an integer is read as its double).
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "whole": pa.int64(),
    "number": pa.float64(),
    "date": pa.timestamp("us", tz="UTC"),
}
SPARK_TYPES = {"string": "STRING", "whole": "BIGINT", "number": "DOUBLE", "date": "TIMESTAMP"}

ID_COLUMN = "_id"  # ObjectId as 24 hex chars; any other _id as "json:" + canonical Extended JSON
RAW_COLUMN = "raw_json"
PARTITION_COLUMNS = ("event_date", "hour")


@dataclasses.dataclass(frozen=True)
class CollectionSpec(contract.CollectionSpec):
    """A contract collection with the column schemas of its archive files."""

    @classmethod
    def of(cls, spec: contract.CollectionSpec) -> CollectionSpec:
        return cls(**{field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)})

    def arrow_schema(self, *, with_partitions: bool = True) -> pa.Schema:
        columns = [pa.field(ID_COLUMN, pa.string())]
        columns += [pa.field(field.name, ARROW_TYPES[field.kind]) for field in self.fields]
        columns.append(pa.field(RAW_COLUMN, pa.string()))
        if with_partitions:
            columns += [pa.field(name, pa.string()) for name in PARTITION_COLUMNS]
        return pa.schema(columns)

    def spark_ddl(self, *, with_partitions: bool = True) -> str:
        columns = [f"`{ID_COLUMN}` STRING"]
        columns += [f"`{field.name}` {SPARK_TYPES[field.kind]}" for field in self.fields]
        columns.append(f"`{RAW_COLUMN}` STRING")
        if with_partitions:
            columns += [f"`{name}` STRING" for name in PARTITION_COLUMNS]
        return ", ".join(columns)

    def pymongoarrow_schema(self, extra: dict[str, pa.DataType] | None = None):
        from bson import ObjectId
        from pymongoarrow.api import Schema

        columns = {"_id": ObjectId}
        # pymongoarrow reads BSON dates at their own (millisecond) resolution, and int/long into a double column.
        read_type = {**ARROW_TYPES, "date": pa.timestamp("ms", tz="UTC")}
        columns.update({field.name: read_type[field.kind] for field in self.fields})
        columns.update(extra or {})
        return Schema(columns)


ORDERS = CollectionSpec.of(contract.ORDERS)
SHIPMENTS = CollectionSpec.of(contract.SHIPMENTS)
INVENTORY = CollectionSpec.of(contract.INVENTORY)

SPECS: tuple[CollectionSpec, ...] = (ORDERS, SHIPMENTS, INVENTORY)
SPECS_BY_COLLECTION = {spec.collection: spec for spec in SPECS}
SPECS_BY_ASSET = {spec.asset: spec for spec in SPECS}
