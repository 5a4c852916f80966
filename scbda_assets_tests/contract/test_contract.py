"""One contract: the quality schema, the KPI type filters and the archive schema are derived from the same specs,
and a number is the same thing everywhere (an integer order_value is counted, valid and archived as a typed row)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from bson import Int64

from scbda_assets import contract
from scbda_assets.archive.schema import SPECS as ARCHIVE_SPECS
from scbda_assets.archive.reader import select
from scbda_assets.contract import NUMBER_TYPES, ORDERS, SPECS
from scbda_assets.history import orders_hourly
from scbda_assets.kpis import pushdown
from scbda_assets.kpis.compute import KPIS
from scbda_assets.quality.rules import FACT_SCHEMAS, schema_violation
from scbda_assets_tests.documents import T0
from scbda_assets_tests.documents import valid_order as order
from scbda_assets_tests.documents import valid_shipment as shipment

START, END = T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1)


def test_every_consumer_reads_the_same_types():
    for spec, archived in zip(SPECS, ARCHIVE_SPECS, strict=True):
        quality = FACT_SCHEMAS[spec.collection]["properties"]
        well_formed = spec.json_schema()["properties"]
        arrow = archived.arrow_schema()
        for field in spec.fields:
            types = field.bson_types + (["null"] if field.nullable else [])
            assert quality[field.name]["bsonType"] == well_formed[field.name]["bsonType"] == types, field
            assert spec.type_filter(field.name) == {field.name: {"$type": field.bson_types}}
            expected = {"string": pa.string(), "whole": pa.int64(), "number": pa.float64()}.get(field.kind)
            assert expected is None or arrow.field(field.name).type == expected, field
    assert ORDERS.field("order_value").bson_types == list(NUMBER_TYPES) == ["int", "long", "double"]
    assert pushdown.ORDER_TYPES == {"$jsonSchema": ORDERS.json_schema()}  # orders: the whole well-formed document
    assert tuple(KPIS) == contract.KPI_NAMES


def test_an_integer_order_value_is_counted_valid_and_archived_as_a_typed_row(mongo_db):
    mongo_db.orders_fact.insert_many([order(1, order_value=1100, lost_revenue=Int64(275)),
                                      order(2, order_value=550.5, lost_revenue=0.0)])
    mongo_db.shipments_fact.insert_one(shipment(1, planned_lead_time_days=3, status="received",
                                                actual_arrival_ts=T0 + dt.timedelta(minutes=10)))

    # the quality check: valid
    for collection in ("orders_fact", "shipments_fact"):
        assert mongo_db[collection].count_documents(schema_violation(collection)) == 0, collection

    # the KPI pushdown: both orders counted, the integer value summed
    totals = pushdown.order_totals(START, END)
    (row,) = mongo_db[totals.collection].aggregate(totals.pipeline)
    assert row["orders"] == 2 and row["revenue"] == 1650.5 and row["lost_revenue"] == 275.0
    created = pushdown.shipments_created(START, END)
    (row,) = mongo_db[created.collection].aggregate(created.pipeline)
    assert row["created"] == 1 and row["sum_planned"] == 3.0

    # the history layer: well-formed, and in its sums
    assert mongo_db.orders_fact.count_documents(orders_hourly.well_formed(START, END)) == 2
    (sums,) = orders_hourly.order_sums(mongo_db, None, START, END)
    assert sums["orders"] == 2 and sums["revenue"] == 1650.5

    # the archive: regular typed rows, no raw JSON
    selection = select(mongo_db, ARCHIVE_SPECS[0], START, END, END)
    assert selection.record_count == 2 and selection.malformed_count == 0
    rows = {r["order_id"]: r for r in selection.table.to_pylist()}
    assert rows["ORD-T-1"]["order_value"] == 1100.0 and rows["ORD-T-1"]["lost_revenue"] == 275.0
    assert all(r["raw_json"] is None for r in rows.values())
    shipments = select(mongo_db, ARCHIVE_SPECS[1], START, END, END)
    assert shipments.record_count == 1 and shipments.malformed_count == 0
    assert shipments.table["planned_lead_time_days"].to_pylist() == [3.0]


def test_a_decimal_or_a_double_count_is_not_well_formed(mongo_db):
    from bson import Decimal128

    mongo_db.orders_fact.insert_many([order(1, order_value=Decimal128("1100.00")), order(2, requested_qty=5.0)])
    assert mongo_db.orders_fact.count_documents(schema_violation("orders_fact")) == 2
    totals = pushdown.order_totals(START, END)
    assert list(mongo_db[totals.collection].aggregate(totals.pipeline)) == []
    assert mongo_db.orders_fact.count_documents(orders_hourly.well_formed(START, END)) == 0
    selection = select(mongo_db, ARCHIVE_SPECS[0], START, END, END)
    assert selection.record_count == 2 and selection.malformed_count == 2


def test_the_contract_and_the_time_module_depend_on_nothing():
    import subprocess
    import sys

    heavy = ("dagster", "pymongo", "bson", "pyarrow", "pandas", "redis")
    code = f"import sys, scbda_assets.contract, scbda_assets.timeutil; print(sorted(set({heavy!r}) & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
