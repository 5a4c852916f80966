"""Dagster assets of the generator: the four reference dimensions and the hot-store multi-asset (thin wiring).

Lineage: regions_dim, dcs_dim, skus_dim, suppliers_dim → orders_fact, shipments_fact, inventory_fact,
inventory_state. The dimensions are written from the calibration of the stream's rate (the configured rate before a stream
exists; dcs_dim capacities must match the simulated stock, see docs/calibration.md); the generator job includes them, and the schedule selects them
whenever they are missing or differ from the configuration.
"""


import datetime as dt
import time

import dagster as dg
import pandas as pd

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.domain.calibration import DIMENSION_KEYS, dimension_documents
from scbda_assets.generator import claim, store
from scbda_assets.generator.stream import Progress, advance
from scbda_assets.quality.rules import FACT_SCHEMAS
from scbda_assets.resources import MongoResource, SettingsResource
from scbda_assets.timeutil import parse_iso

REFERENCE_GROUP = "reference"
HOT_STORE_GROUP = "hot_store"
DIMENSION_NAMES = tuple(DIMENSION_KEYS)
FACT_NAMES = ("orders_fact", "shipments_fact", "inventory_fact", "inventory_state")
SCHEDULED_TIME_TAG = "dagster/scheduled_execution_time"


DEFAULT_RATE = 1500.0  # SCBDA_EVENTS_PER_MINUTE's default: the field types do not depend on the rate
_PYTHON_BSON = {str: "string", int: "int", float: "double", bool: "bool", dt.datetime: "date"}
INVENTORY_STATE_FIELDS = {"sku_id": "string", "dc_id": "string", "on_hand_qty": "int", "on_order_qty": "int",
                          "safety_stock": "int", "reorder_point": "int", "updated_at": "date"}


def column_schema(name: str) -> dg.TableSchema:
    """The collection's fields and BSON types, as Dagster's ``dagster/column_schema`` (shown on the asset page):
    the facts from their quality ``$jsonSchema``, the dimensions from the documents the generator writes."""
    if name in FACT_SCHEMAS:
        properties = FACT_SCHEMAS[name]["properties"]
        fields = {field: _bson_type(rule) for field, rule in properties.items()}
    elif name == "inventory_state":
        fields = INVENTORY_STATE_FIELDS
    else:
        fields = {field: _PYTHON_BSON[type(value)] for field, value in dimension_documents(name, DEFAULT_RATE)[0].items()}
    return dg.TableSchema(columns=[dg.TableColumn(field, kind) for field, kind in fields.items()])


def _bson_type(rule: dict) -> str:
    if "enum" in rule:
        return "string (" + " | ".join(rule["enum"]) + ")"
    kinds = rule["bsonType"]
    return kinds if isinstance(kinds, str) else " | ".join(kinds)


def _preview(docs: list[dict]) -> dg.MetadataValue:
    frame = pd.DataFrame([{k: v for k, v in doc.items() if k != "_id"} for doc in docs[:5]])
    return dg.MetadataValue.md(frame.to_markdown(index=False) if not frame.empty else "_no rows_")


def _dimension_asset(name: str) -> dg.AssetsDefinition:
    key_field = DIMENSION_KEYS[name]

    @dg.asset(
        name=name,
        group_name=REFERENCE_GROUP,
        kinds={"mongodb"},
        metadata={"dagster/column_schema": column_schema(name)},
        description=f"Reference dimension `{name}` (docs/generator.md), upserted by `{key_field}`; calibrated for the rate.",
    )
    def _dimension(context: dg.AssetExecutionContext, mongo: MongoResource, settings: SettingsResource):
        started = time.perf_counter()
        db = mongo.database()
        rate = claim.stream_rate(db, settings.get().events_per_minute)  # the stream's, once there is one
        docs = dimension_documents(name, rate)
        counts = store.upsert_dimension(db, name, docs, key_field)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(docs),
                **counts,
                "events_per_minute": rate,
                "written_at": dg.MetadataValue.timestamp(dt.datetime.now(dt.UTC)),
                "duration_s": round(time.perf_counter() - started, 3),
                "preview": _preview(docs),
            }
        )

    return _dimension


REFERENCE_ASSETS = [_dimension_asset(name) for name in DIMENSION_NAMES]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(name, group_name=HOT_STORE_GROUP, kinds={"mongodb"}, deps=list(DIMENSION_NAMES),
                     description=description, metadata={"dagster/column_schema": column_schema(name)})
        for name, description in (
            ("orders_fact", "Customer orders, one document per order, event time `order_ts`."),
            ("shipments_fact", "Supplier shipments: created in transit, updated when received (`shipment_ts`)."),
            ("inventory_fact", "Inventory snapshots of every (sku, dc) each minute (`inventory_ts`)."),
            ("inventory_state", "Current stock per (sku, dc) after the last simulated minute."),
        )
    ],
    can_subset=False,
    description="The generator: simulates the next minutes of the chain (up to the tick, catching up after "
    "downtime, at most SCBDA_CATCHUP_MAX_MINUTES per run) and writes them to MongoDB.",
)
def hot_store(context: dg.AssetExecutionContext, mongo: MongoResource, settings: SettingsResource):
    config = settings.get()
    tick = context.run.tags.get(SCHEDULED_TIME_TAG)
    end = parse_iso(tick) if tick else dt.datetime.now(dt.UTC)
    db = mongo.database()
    try:
        result = advance(
            db, config, end=end, start_if_new=end - dt.timedelta(minutes=1), max_minutes=config.catchup_max_minutes
        )
    except claim.StreamBusy as busy:  # a backfill holds the stream: this tick writes nothing, the next catches up
        context.log.warning(str(busy))
        result = Progress(start=end, end=end)
    context.log.info(
        f"generator: {result.minutes} minute(s) {result.start:%Y-%m-%d %H:%M} → {result.end:%H:%M} UTC, "
        f"{result.events} documents in {result.seconds:.2f}s"
    )
    totals = store.collection_counts(db)
    window = {
        "window_start": dg.MetadataValue.timestamp(result.start),
        "window_end": dg.MetadataValue.timestamp(result.end),
        "minutes": result.minutes,
        "duration_s": round(result.seconds, 3),
    }
    for name in FACT_COLLECTIONS:
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": result.written[name],
                "collection_documents": totals[name],
                **window,
                **({"receipts_applied": result.received} if name == "shipments_fact" else {}),
                **({"late_events_pending": result.late_pending} if name != "inventory_fact" else {}),
                "preview": _preview(result.preview.get(name, [])),
            },
        )
    states = store.inventory_state_preview(db)
    yield dg.MaterializeResult(
        asset_key="inventory_state",
        metadata={"dagster/row_count": totals["inventory_state"], **window, "preview": _preview(states)},
    )
