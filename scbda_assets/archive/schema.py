"""What an archived collection looks like: typed columns (all nullable), the MongoDB ``_id`` and a raw-JSON column.

A document that fits the collection's ``$jsonSchema`` is archived in typed columns only (``raw_json`` null).
A document that does not fit (wrong type, missing or extra field) is archived *as it is*: the typed columns hold what
fits, ``raw_json`` holds the whole document in relaxed Extended JSON — never dropped, never a crash.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

# Column kinds -> (Arrow type, BSON types accepted as well-formed).
_KINDS: dict[str, tuple[pa.DataType, list[str]]] = {
    "string": (pa.string(), ["string"]),
    "int": (pa.int64(), ["int", "long"]),
    "double": (pa.float64(), ["double"]),
    "date": (pa.timestamp("us", tz="UTC"), ["date"]),
}

ID_COLUMN = "_id"  # ObjectId as 24 hex chars; any other _id as "json:" + canonical Extended JSON
RAW_COLUMN = "raw_json"
PARTITION_COLUMNS = ("event_date", "hour")


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    collection: str  # MongoDB collection and archive folder name
    asset: str  # Dagster asset key of the archive
    id_field: str  # business id
    event_field: str  # event time: decides the hour partition
    fields: tuple[tuple[str, str], ...]  # (name, kind), SPEC §6 order
    nullable: frozenset[str] = frozenset()  # fields that may be BSON null in a well-formed document

    @property
    def field_names(self) -> list[str]:
        return [name for name, _ in self.fields]

    def arrow_schema(self, *, with_partitions: bool = True) -> pa.Schema:
        columns = [pa.field(ID_COLUMN, pa.string())]
        columns += [pa.field(name, _KINDS[kind][0]) for name, kind in self.fields]
        columns.append(pa.field(RAW_COLUMN, pa.string()))
        if with_partitions:
            columns += [pa.field(name, pa.string()) for name in PARTITION_COLUMNS]
        return pa.schema(columns)

    def spark_ddl(self, *, with_partitions: bool = True) -> str:
        spark_types = {"string": "STRING", "int": "BIGINT", "double": "DOUBLE", "date": "TIMESTAMP"}
        columns = [f"`{ID_COLUMN}` STRING"]
        columns += [f"`{name}` {spark_types[kind]}" for name, kind in self.fields]
        columns.append(f"`{RAW_COLUMN}` STRING")
        if with_partitions:
            columns += [f"`{name}` STRING" for name in PARTITION_COLUMNS]
        return ", ".join(columns)

    def json_schema(self) -> dict:
        """MongoDB ``$jsonSchema`` of a well-formed document (exactly these fields, these BSON types)."""
        properties = {"_id": {"bsonType": "objectId"}}
        for name, kind in self.fields:
            types = list(_KINDS[kind][1])
            if name in self.nullable:
                types.append("null")
            properties[name] = {"bsonType": types}
        required = [name for name, _ in self.fields if name not in self.nullable]
        return {"bsonType": "object", "required": ["_id", *required], "properties": properties,
                "additionalProperties": False}

    def pymongoarrow_schema(self, extra: dict[str, pa.DataType] | None = None):
        from bson import ObjectId
        from pymongoarrow.api import Schema

        columns = {"_id": ObjectId}
        # pymongoarrow reads BSON dates at their own (millisecond) resolution.
        read_type = {**{k: v[0] for k, v in _KINDS.items()}, "date": pa.timestamp("ms", tz="UTC")}
        columns.update({name: read_type[kind] for name, kind in self.fields})
        columns.update(extra or {})
        return Schema(columns)


ORDERS = CollectionSpec(
    collection="orders_fact",
    asset="orders_archive",
    id_field="order_id",
    event_field="order_ts",
    fields=(
        ("order_id", "string"), ("sku_id", "string"), ("dc_id", "string"), ("region_id", "string"),
        ("requested_qty", "int"), ("fulfilled_qty", "int"), ("lost_qty", "int"), ("order_value", "double"),
        ("lost_revenue", "double"), ("priority", "string"), ("order_ts", "date"), ("ingested_at", "date"),
    ),
)
SHIPMENTS = CollectionSpec(
    collection="shipments_fact",
    asset="shipments_archive",
    id_field="shipment_id",
    event_field="shipment_ts",
    fields=(
        ("shipment_id", "string"), ("sku_id", "string"), ("supplier_id", "string"), ("dc_id", "string"),
        ("quantity", "int"), ("planned_lead_time_days", "double"), ("shipment_ts", "date"),
        ("expected_arrival_ts", "date"), ("actual_arrival_ts", "date"), ("status", "string"),
        ("ingested_at", "date"),
    ),
    nullable=frozenset({"actual_arrival_ts"}),
)
INVENTORY = CollectionSpec(
    collection="inventory_fact",
    asset="inventory_archive",
    id_field="snapshot_id",
    event_field="inventory_ts",
    fields=(
        ("snapshot_id", "string"), ("sku_id", "string"), ("dc_id", "string"), ("on_hand_qty", "int"),
        ("on_order_qty", "int"), ("safety_stock", "int"), ("reorder_point", "int"), ("inventory_ts", "date"),
        ("ingested_at", "date"),
    ),
)

SPECS: tuple[CollectionSpec, ...] = (ORDERS, SHIPMENTS, INVENTORY)
SPECS_BY_COLLECTION = {spec.collection: spec for spec in SPECS}
SPECS_BY_ASSET = {spec.asset: spec for spec in SPECS}
