"""The hot-store asset checks, run as Dagster runs the quality job: passing on generated data, failing (with the
counts in their metadata) on purpose-built bad documents."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from scbda_assets.definitions import build_definitions
from scbda_assets.generator.backfill import backfill
from scbda_assets_tests.documents import DROP, valid_order, valid_snapshot

END = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _run_quality_job(settings) -> dict[str, dg.AssetCheckEvaluation]:
    job = build_definitions(settings).resolve_job_def("quality_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in result.get_asset_check_evaluations()
    }


def test_generated_data_passes_every_check_but_freshness(settings, mongo_db):
    # Freshness compares with the wall clock, so the history's end is a week before it (not a fixed date).
    week_ago = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=7)
    backfill(settings, minutes=5, rate=600, end=week_ago, seed=3, progress=False)
    results = _run_quality_job(settings)
    assert set(results) == {
        "orders_fact:schema_valid", "shipments_fact:schema_valid", "inventory_fact:schema_valid",
        "orders_fact:business_rules", "shipments_fact:business_rules", "inventory_fact:business_rules",
        "inventory_state:business_rules", "orders_fact:events_fresh",
    }
    assert mongo_db.orders_fact.count_documents({}) > 100
    for name, evaluation in results.items():
        if name == "orders_fact:events_fresh":
            # The history ended a week ago: not fresh, and the check says how old.
            assert not evaluation.passed and evaluation.metadata["age_seconds"].value > 120
        else:
            assert evaluation.passed, (name, evaluation.metadata)
    assert results["orders_fact:schema_valid"].metadata["data_quality_score"].value == 1.0


def test_fresh_events_pass_freshness(settings):
    backfill(settings, minutes=2, rate=600, end=dt.datetime.now(dt.UTC), seed=3, progress=False)
    assert _run_quality_job(settings)["orders_fact:events_fresh"].passed


# mongod assigns the generated documents' _id with its own clock, which --shift-clock-days cannot move.
@pytest.mark.subprocess_clock
def test_bad_documents_fail_the_named_checks_with_counts(settings, mongo_db):
    backfill(settings, minutes=3, rate=600, end=END, seed=3, progress=False)
    total = mongo_db.orders_fact.count_documents({})
    mongo_db.orders_fact.insert_many([
        valid_order(900001, requested_qty=DROP),
        valid_order(900002, requested_qty="seven"),
        valid_order(900003, fulfilled_qty=9, lost_qty=-4),  # more than requested
    ])
    mongo_db.inventory_fact.insert_one(valid_snapshot(900004, on_hand_qty=-1))
    results = _run_quality_job(settings)

    schema = results["orders_fact:schema_valid"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.WARN
    assert schema.metadata["malformed"].value == 3  # the negative lost_qty breaks the schema's minimum too
    assert schema.metadata["data_quality_score"].value == (total + 3 - 3) / (total + 3)

    rules = results["orders_fact:business_rules"]
    assert not rules.passed and rules.severity == dg.AssetCheckSeverity.ERROR
    assert rules.metadata["violations: fulfilled_le_requested"].value == 1
    assert not results["inventory_fact:business_rules"].passed
    assert results["inventory_fact:business_rules"].metadata["violations: no_negative_stock"].value == 1
    assert results["shipments_fact:business_rules"].passed
