"""The quality rules, evaluated by the real MongoDB on purpose-built valid and malformed documents."""

from __future__ import annotations

import pytest

from scbda_assets.quality.rules import BUSINESS_RULES, any_violation, quality_score, schema_violation
from scbda_assets_tests.documents import DROP, valid_order, valid_shipment, valid_snapshot


def _violations(db, collection: str, rule: str) -> int:
    (match,) = [r for r in BUSINESS_RULES[collection] if r.name == rule]
    return db[collection].count_documents(match.violation)


def test_valid_documents_pass_everything(mongo_db):
    mongo_db.orders_fact.insert_many([valid_order(i) for i in range(3)])
    mongo_db.shipments_fact.insert_one(valid_shipment())
    mongo_db.inventory_fact.insert_one(valid_snapshot())
    for collection in ("orders_fact", "shipments_fact", "inventory_fact"):
        assert mongo_db[collection].count_documents({}) > 0
        assert mongo_db[collection].count_documents(any_violation(collection)) == 0, collection


@pytest.mark.parametrize(
    "malformed",
    [
        valid_order(1, requested_qty=DROP),  # missing field
        valid_order(2, requested_qty="5"),  # wrong type
        valid_order(3, order_ts="2026-11-20T10:00:00Z"),  # a string where a date belongs
        valid_order(4, sku_id=None),  # null id
        valid_order(5, priority="URGENT"),  # outside the enum
        valid_order(6, requested_qty=0),  # below the minimum
    ],
)
def test_each_kind_of_malformed_order_is_counted(mongo_db, malformed):
    mongo_db.orders_fact.insert_many([valid_order(0), malformed])
    assert mongo_db.orders_fact.count_documents(schema_violation("orders_fact")) == 1
    assert mongo_db.orders_fact.find_one(schema_violation("orders_fact"))["order_id"] == malformed["order_id"]


def test_business_rules_each_catch_their_case(mongo_db):
    mongo_db.orders_fact.insert_many([
        valid_order(0),
        valid_order(1, fulfilled_qty=9, lost_qty=0),  # more fulfilled than requested (and lost does not add up)
        valid_order(2, sku_id="SKU-UNKNOWN"),
        valid_order(3, dc_id="DC-NOWHERE"),
    ])
    assert _violations(mongo_db, "orders_fact", "fulfilled_le_requested") == 1
    assert _violations(mongo_db, "orders_fact", "lost_is_shortfall") == 1
    assert _violations(mongo_db, "orders_fact", "known_sku") == 1
    assert _violations(mongo_db, "orders_fact", "known_dc") == 1
    assert mongo_db.orders_fact.count_documents(any_violation("orders_fact")) == 3

    mongo_db.inventory_fact.insert_many([valid_snapshot(0), valid_snapshot(1, on_hand_qty=-3)])
    assert _violations(mongo_db, "inventory_fact", "no_negative_stock") == 1

    mongo_db.shipments_fact.insert_many([
        valid_shipment(0),
        valid_shipment(1, status="received"),  # received but no arrival time
        valid_shipment(2, supplier_id="SUP-GHOST"),
    ])
    assert _violations(mongo_db, "shipments_fact", "received_has_arrival") == 1
    assert _violations(mongo_db, "shipments_fact", "known_supplier") == 1


def test_quality_score():
    assert quality_score(0, 0) == 1.0
    assert quality_score(200, 3) == pytest.approx(0.985)


def test_rules_never_fail_on_malformed_documents(mongo_db):
    mongo_db.orders_fact.insert_many([valid_order(0), valid_order(1, requested_qty="5"), valid_order(2, fulfilled_qty=None),
                                      valid_order(3, lost_qty=DROP)])
    for rule in BUSINESS_RULES["orders_fact"]:
        mongo_db.orders_fact.count_documents(rule.violation)  # raises if MongoDB cannot evaluate the rule
    assert mongo_db.orders_fact.count_documents(any_violation("orders_fact")) == 3  # all three, via the schema


def test_checks_read_new_documents_and_every_foreign_id_in_one_pass(mongo_db):
    """Old documents (checked by earlier runs) are out of scope; a non-ObjectId _id is always in; the scope is
    found on the _id index, so a check costs the same however large the hot store is."""
    import datetime as dt

    from bson import ObjectId

    from scbda_assets.quality.rules import new_documents, violation_counts

    now = dt.datetime.now(dt.UTC)
    old = ObjectId.from_datetime(now - dt.timedelta(hours=2))
    mongo_db.orders_fact.insert_many([
        {**valid_order(1, requested_qty="5"), "_id": old},  # malformed, but inserted two hours ago
        valid_order(2),
        valid_order(3, fulfilled_qty=9, lost_qty=-4),  # breaks a rule and the schema minimum
        {**valid_order(4, requested_qty=DROP), "_id": "from-outside-42"},  # a foreign _id, old or not
    ])
    scope = new_documents(now)
    counts = violation_counts(mongo_db.orders_fact, scope)
    assert counts["documents"] == 3 and counts["malformed"] == 2 and counts["invalid"] == 2
    assert counts["fulfilled_le_requested"] == 1 and counts["known_sku"] == 0
    plan = str(mongo_db.orders_fact.find(scope).explain()["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in plan and "IXSCAN" in plan
