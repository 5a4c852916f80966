"""The fact collections of the hot store (SPEC §6): fields, BSON types, business ids, event-time fields.

One definition of every field's type, from which the rest is derived:

- ``CollectionSpec.json_schema()``: a *well-formed* document — exactly these fields (plus an ObjectId ``_id``), all
  present, each of its BSON type, null only where allowed. The archive stores a well-formed document in typed
  columns, anything else as raw JSON; the history layer aggregates well-formed documents only.
- ``CollectionSpec.quality_schema()``: the data-quality check's schema — well-formed, and within the value rules
  (minimums, enumerations).
- ``CollectionSpec.type_filter(...)``: a ``$type`` match on the fields a KPI reads (no nulls, no missing fields).

A number is one definition everywhere: ``NUMBER_TYPES`` (BSON int, long or double). An integer ``order_value`` is
as much a number as ``1100.0``: well-formed for the archive and the history layer, valid for the quality check,
counted by the KPIs. A ``decimal`` is none of these (the archive's double column could not hold it as written).
Counts and stock levels are whole (int or long): ``5.0`` requested units is malformed everywhere.
"""

from __future__ import annotations

import dataclasses

# Field kind -> the BSON types a well-formed document may hold there.
WHOLE_TYPES: tuple[str, ...] = ("int", "long")
NUMBER_TYPES: tuple[str, ...] = ("int", "long", "double")
BSON_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "whole": WHOLE_TYPES,
    "number": NUMBER_TYPES,
    "date": ("date",),
}


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: str  # a key of BSON_TYPES
    nullable: bool = False  # may be BSON null in a well-formed document (present all the same)
    minimum: float | None = None  # value rule of the quality check
    enum: tuple[str, ...] | None = None  # value rule of the quality check

    def __post_init__(self):
        if self.kind not in BSON_TYPES:
            raise ValueError(f"field {self.name}: kind {self.kind!r} is not one of {', '.join(BSON_TYPES)}")

    @property
    def bson_types(self) -> list[str]:
        return list(BSON_TYPES[self.kind])


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    collection: str  # MongoDB collection and archive folder name
    asset: str  # Dagster asset key of the archive
    id_field: str  # business id
    event_field: str  # event time: decides the hour partition and the KPI windows
    fields: tuple[Field, ...]  # SPEC §6 order

    @property
    def field_names(self) -> list[str]:
        return [field.name for field in self.fields]

    @property
    def kinds(self) -> dict[str, str]:
        return {field.name: field.kind for field in self.fields}

    @property
    def nullable(self) -> frozenset[str]:
        return frozenset(field.name for field in self.fields if field.nullable)

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.collection} has no field {name!r}")

    def json_schema(self) -> dict:
        """MongoDB ``$jsonSchema`` of a well-formed document (exactly these fields, these BSON types)."""
        properties: dict[str, dict] = {"_id": {"bsonType": "objectId"}}
        for field in self.fields:
            properties[field.name] = {"bsonType": field.bson_types + (["null"] if field.nullable else [])}
        return {"bsonType": "object", "required": ["_id", *self.field_names], "properties": properties,
                "additionalProperties": False}

    def quality_schema(self) -> dict:
        """``json_schema()`` plus the value rules (minimums, enumerations): what the schema check accepts."""
        schema = self.json_schema()
        for field in self.fields:
            rules = schema["properties"][field.name]
            if field.minimum is not None:
                rules["minimum"] = field.minimum
            if field.enum is not None:
                rules["enum"] = list(field.enum)
        return schema

    def type_filter(self, *names: str) -> dict:
        """A ``$match`` on the BSON types of ``names``: rejects nulls, missing fields and wrong types alike."""
        return {name: {"$type": self.field(name).bson_types} for name in names}


def _fact(collection: str, id_field: str, event_field: str, *fields: Field) -> CollectionSpec:
    """A fact collection; its archive asset is named after it (``orders_fact`` -> ``orders_archive``)."""
    return CollectionSpec(collection, collection.replace("_fact", "_archive"), id_field, event_field, fields)


ORDERS = _fact(
    "orders_fact", "order_id", "order_ts",
    Field("order_id", "string"), Field("sku_id", "string"), Field("dc_id", "string"), Field("region_id", "string"),
    Field("requested_qty", "whole", minimum=1), Field("fulfilled_qty", "whole", minimum=0),
    Field("lost_qty", "whole", minimum=0), Field("order_value", "number", minimum=0),
    Field("lost_revenue", "number", minimum=0), Field("priority", "string", enum=("HIGH", "NORMAL", "LOW")),
    Field("order_ts", "date"), Field("ingested_at", "date"),
)
SHIPMENTS = _fact(
    "shipments_fact", "shipment_id", "shipment_ts",
    Field("shipment_id", "string"), Field("sku_id", "string"), Field("supplier_id", "string"),
    Field("dc_id", "string"), Field("quantity", "whole", minimum=1),
    Field("planned_lead_time_days", "number", minimum=0), Field("shipment_ts", "date"),
    Field("expected_arrival_ts", "date"), Field("actual_arrival_ts", "date", nullable=True),
    Field("status", "string", enum=("in_transit", "received")), Field("ingested_at", "date"),
)
INVENTORY = _fact(
    "inventory_fact", "snapshot_id", "inventory_ts",
    Field("snapshot_id", "string"), Field("sku_id", "string"), Field("dc_id", "string"), Field("on_hand_qty", "whole"),
    Field("on_order_qty", "whole"), Field("safety_stock", "whole"), Field("reorder_point", "whole"),
    Field("inventory_ts", "date"), Field("ingested_at", "date"),
)

SPECS: tuple[CollectionSpec, ...] = (ORDERS, SHIPMENTS, INVENTORY)
SPECS_BY_COLLECTION: dict[str, CollectionSpec] = {spec.collection: spec for spec in SPECS}
SPECS_BY_ASSET: dict[str, CollectionSpec] = {spec.asset: spec for spec in SPECS}
FACT_COLLECTIONS: tuple[str, ...] = tuple(spec.collection for spec in SPECS)
