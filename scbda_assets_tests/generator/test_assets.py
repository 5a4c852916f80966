"""Dagster wiring: reference dimensions (upsert), the hot-store multi-asset via generator_job, the schedule."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.definitions import build_definitions
from scbda_assets.domain.calibration import calibrate
from scbda_assets.domain.reference import DCS, REGIONS, SKUS, SUPPLIERS
from scbda_assets.generator.assets import DIMENSION_NAMES, FACT_NAMES, REFERENCE_ASSETS, SCHEDULED_TIME_TAG
from scbda_assets.generator.jobs import generator_schedule
from scbda_assets.resources import MongoResource, build_resources
from scbda_assets.settings import Settings


def _with(settings: Settings, **env) -> Settings:
    return Settings.from_env({**settings.to_env(), **env})


def _materializations(result, name):
    return [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(name)]


def test_reference_assets_upsert_by_business_key(settings, mongo_db):
    result = dg.materialize(REFERENCE_ASSETS, resources=build_resources(settings))
    assert result.success
    sizes = {"regions_dim": len(REGIONS), "dcs_dim": len(DCS), "skus_dim": len(SKUS), "suppliers_dim": len(SUPPLIERS)}
    for name, size in sizes.items():
        assert mongo_db[name].count_documents({}) == size
        (mat,) = _materializations(result, name)
        assert mat.metadata["dagster/row_count"].value == size
        assert "preview" in mat.metadata
    khi = mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})
    assert khi["capacity_m3"] == calibrate(settings.events_per_minute).dc_capacity_m3[0]
    assert khi["latitude"] == 24.86 and khi["region_id"] == "PK-SINDH"
    # A configuration change (rate) reaches the existing database; a hand-edited field is put back; no duplicates.
    mongo_db.suppliers_dim.update_one({"supplier_id": "SUP-IMPORT-001"}, {"$set": {"reliability_score": 0.1}})
    changed = _with(settings, SCBDA_EVENTS_PER_MINUTE="30")
    assert dg.materialize(REFERENCE_ASSETS, resources=build_resources(changed)).success
    assert mongo_db.dcs_dim.count_documents({}) == len(DCS)
    assert mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})["capacity_m3"] == calibrate(30.0).dc_capacity_m3[0]
    assert mongo_db.suppliers_dim.find_one({"supplier_id": "SUP-IMPORT-001"})["reliability_score"] == 0.82
    assert len(mongo_db.dcs_dim.index_information()) == 2  # _id and the unique dc_id


def test_generator_job_writes_dims_then_facts_with_metadata(settings, mongo_db):
    config = _with(settings, SCBDA_EVENTS_PER_MINUTE="200", SCBDA_CATCHUP_MAX_MINUTES="3")
    job = build_definitions(config).resolve_job_def("generator_job")
    tick = dt.datetime(2026, 5, 5, 10, 0, tzinfo=dt.UTC)
    result = job.execute_in_process(tags={SCHEDULED_TIME_TAG: tick.isoformat()})
    assert result.success
    assert result.dagster_run.tags["scbda/stage"] == "generator"
    for name in DIMENSION_NAMES:
        assert mongo_db[name].count_documents({}) > 0
    (orders,) = _materializations(result, "orders_fact")
    assert orders.metadata["dagster/row_count"].value == mongo_db.orders_fact.count_documents({}) > 0
    assert orders.metadata["window_end"].value == tick.timestamp()
    assert orders.metadata["window_start"].value == (tick - dt.timedelta(minutes=1)).timestamp()
    assert "preview" in orders.metadata and "duration_s" in orders.metadata
    (state,) = _materializations(result, "inventory_state")
    assert state.metadata["dagster/row_count"].value == 50
    # Ten minutes later the next run catches up at most SCBDA_CATCHUP_MAX_MINUTES.
    # (as the schedule requests it once the dims are current: the facts only)
    later = job.execute_in_process(
        tags={SCHEDULED_TIME_TAG: (tick + dt.timedelta(minutes=10)).isoformat()},
        asset_selection=[dg.AssetKey(n) for n in FACT_NAMES],
    )
    assert not _materializations(later, "dcs_dim")
    (snapshots,) = _materializations(later, "inventory_fact")
    assert snapshots.metadata["minutes"].value == 3
    assert snapshots.metadata["dagster/row_count"].value == 3 * 50
    assert mongo_db.generator_state.find_one({})["as_of"] == tick + dt.timedelta(minutes=3)


def test_schedule_runs_every_minute_and_adds_dims_only_when_needed(settings, mongo_db):
    assert generator_schedule.cron_schedule == "* * * * *"
    assert generator_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert generator_schedule.job_name == "generator_job"
    resources = build_resources(settings)
    tick = dt.datetime(2026, 5, 5, 10, 1, tzinfo=dt.UTC)
    facts = {dg.AssetKey(n) for n in FACT_NAMES}
    dims = {dg.AssetKey(n) for n in DIMENSION_NAMES}

    def evaluate(res):
        with dg.build_schedule_context(scheduled_execution_time=tick, resources=res) as context:
            return generator_schedule.evaluate_tick(context).run_requests

    (empty,) = evaluate(resources)
    assert set(empty.asset_selection) == facts | dims  # fresh database: dims come first
    assert empty.run_key == tick.isoformat() and empty.tags["scbda/stage"] == "generator"
    assert dg.materialize(REFERENCE_ASSETS, resources=resources).success
    (current,) = evaluate(resources)
    assert set(current.asset_selection) == facts
    # Rate changed: capacities in dcs_dim are stale, so the tick includes the dims again.
    (stale,) = evaluate(build_resources(_with(settings, SCBDA_EVENTS_PER_MINUTE="42")))
    assert set(stale.asset_selection) == facts | dims
    # MongoDB unreachable: the tick still requests a run (which then fails with one clear line).
    down = build_resources(settings)
    down["mongo"] = MongoResource(uri="mongodb://127.0.0.1:1/", database_name=settings.mongo_db, timeout_ms=300)
    (unreachable,) = evaluate(down)
    assert set(unreachable.asset_selection) == facts | dims
