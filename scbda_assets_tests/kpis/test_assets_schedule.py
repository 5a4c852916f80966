"""Dagster wiring: the subsettable KPI multi-asset (deps, metadata, Redis), kpi_job and the minute schedule."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from scbda_assets.definitions import build_definitions
from scbda_assets.kpis.assets import ASSET_KEYS, kpis
from scbda_assets.kpis.jobs import kpi_schedule
from scbda_assets.resources import build_resources
from scbda_assets_tests.documents import order, snapshot

UPSTREAM = {
    "kpi_inventory_level": {"inventory_fact", "skus_dim", "dcs_dim", "orders_hourly"},
    "kpi_stockout_risk": {"inventory_fact", "orders_fact", "skus_dim", "dcs_dim", "orders_hourly",
                          "shipments_history"},
    "kpi_supplier_performance": {"shipments_history", "suppliers_dim"},
    "kpi_dc_utilization": {"inventory_fact", "skus_dim", "dcs_dim", "shipments_history"},
    "kpi_regional_fulfillment": {"orders_fact", "regions_dim", "dcs_dim", "skus_dim"},
}


def _materializations(result) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def test_assets_declare_the_collections_they_read(tmp_path):
    assert kpis.can_subset
    for key, upstream in UPSTREAM.items():
        deps = {dep.to_user_string() for dep in kpis.asset_deps[dg.AssetKey(key)]}
        assert deps == upstream, key
        assert kpis.group_names_by_key[dg.AssetKey(key)] == "kpis"


@pytest.fixture
def now() -> dt.datetime:
    """The asset reads the wall clock (is the as-of live or past?), so these runs use the wall clock throughout,
    read when the test starts (a module constant would be minutes old by then in a long suite)."""
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def _run_config(as_of: dt.datetime) -> dict:
    return {"ops": {"kpis": {"config": {"as_of": as_of.isoformat()}}}}


def _before(now: dt.datetime, minutes: float) -> dt.datetime:
    return now - dt.timedelta(minutes=minutes)


def test_materialize_all_records_metadata_and_writes_redis(kpi_db, redis_client, spark_settings, now):
    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 250, _before(now, 1)))
    kpi_db.orders_fact.insert_one(order("o1", "SKU-STAPLE-001", "DC-KHI", _before(now, 2), 5, 4, value=400.0))
    result = dg.materialize([kpis], resources=build_resources(spark_settings), run_config=_run_config(now))
    assert result.success
    metadata = _materializations(result)
    assert set(metadata) == set(UPSTREAM)
    counts = {key: meta["dagster/row_count"].value for key, meta in metadata.items()}
    assert counts == {"kpi_inventory_level": 1, "kpi_stockout_risk": 1, "kpi_supplier_performance": 4,
                      "kpi_dc_utilization": 5, "kpi_regional_fulfillment": 4}
    for meta in metadata.values():
        assert meta["as_of"].value == now.timestamp() and meta["published"].value is True
        assert meta["compute_seconds"].value > 0
        assert meta["preview"].value.startswith("| ")
    assert metadata["kpi_inventory_level"]["total_on_hand"].value == 250.0
    assert metadata["kpi_stockout_risk"]["stockout_alerts"].value == 1.0
    assert metadata["kpi_stockout_risk"]["alert_count"].value == 1
    assert metadata["kpi_regional_fulfillment"]["revenue"].value == 400.0
    assert "avg_on_time_rate" not in metadata["kpi_supplier_performance"]  # no receipts: no denominator
    assert metadata["kpi_dc_utilization"]["avg_utilization"].value > 0
    for name in ("inventory_level", "stockout_risk", "supplier_performance", "dc_utilization",
                 "regional_fulfillment"):
        assert json.loads(redis_client.get(f"kpi:{name}"))["as_of"] == now.isoformat()
    daily = json.loads(redis_client.get("history:daily"))
    assert daily["days"] == 30 and len(daily["regions"]) == 30 * 4 and len(daily["suppliers"]) == 30 * 4
    assert sum(r["orders"] for r in daily["regions"]) == 1


def test_a_past_as_of_records_payloads_in_metadata_and_leaves_the_live_keys(kpi_db, redis_client, spark_settings,
                                                                           now):
    redis_client.set("kpi:stockout_risk", "live")
    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 250, _before(now, 24 * 60 + 1)))
    past = {"ops": {"kpis": {"config": {"as_of": _before(now, 24 * 60).isoformat()}}}}
    result = dg.materialize([kpis], resources=build_resources(spark_settings), run_config=past)
    assert result.success
    metadata = _materializations(result)
    payload = metadata["kpi_inventory_level"]["payload"].value
    assert payload["rows"][0]["on_hand_qty"] == 250 and metadata["kpi_inventory_level"]["published"].value is False
    assert {key.decode() for key in redis_client.keys("*")} == {"kpi:stockout_risk"}
    assert redis_client.get("kpi:stockout_risk") == b"live"


def test_subset_materializes_and_writes_only_the_selected_kpis(kpi_db, redis_client, spark_settings, now):
    selection = [ASSET_KEYS["dc_utilization"], ASSET_KEYS["supplier_performance"]]
    result = dg.materialize([kpis], selection=selection, resources=build_resources(spark_settings),
                            run_config=_run_config(now))
    assert result.success
    assert set(_materializations(result)) == {"kpi_dc_utilization", "kpi_supplier_performance"}
    assert {key.decode() for key in redis_client.keys("kpi:*")} == {
        "kpi:dc_utilization", "kpi:supplier_performance", "kpi:last_update", "kpi:history", "kpi:as_of"}
    assert redis_client.exists("history:daily")


def test_a_failed_run_materializes_nothing_and_writes_nothing(kpi_db, redis_client, spark_settings):
    bad = {"ops": {"kpis": {"config": {"as_of": "yesterday"}}}}
    result = dg.materialize([kpis], resources=build_resources(spark_settings), run_config=bad, raise_on_error=False)
    assert not result.success
    assert result.get_asset_materialization_events() == []
    assert redis_client.keys("*") == []


def test_job_targets_the_five_kpis_with_the_stage_tag_and_in_process_executor(tmp_path):
    defs = build_definitions(_offline_settings(tmp_path))
    job = defs.resolve_job_def("kpi_job")
    assert job.executor_def.name == "in_process"
    assert job.tags["scbda/stage"] == "kpis"
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == set(UPSTREAM)
    schedule = defs.resolve_schedule_def("kpi_schedule")
    assert schedule.job_name == "kpi_job" and schedule.cron_schedule == "* * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_schedule_passes_the_tick_as_as_of():
    tick = dt.datetime(2026, 11, 22, 9, 41, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        request = kpi_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["kpis"]["config"] == {"as_of": tick.isoformat(), "live": True}
    assert request.tags["scbda/as_of"] == tick.isoformat()
    assert request.run_key == f"kpis-{tick.isoformat()}"


def test_schedule_skips_while_a_kpi_run_is_pending_or_running():
    tick = dt.datetime(2026, 11, 22, 9, 42, tzinfo=dt.UTC)

    def evaluate(instance):
        return kpi_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))

    def add_run(instance, stage, status):
        run = dg.DagsterRun(job_name="kpi_job", run_id=make_new_run_id(), status=status,
                            tags={"scbda/stage": stage})
        return instance.add_run(run)

    with dg.instance_for_test() as instance:
        add_run(instance, "archive", dg.DagsterRunStatus.STARTED)  # another stage does not block KPIs
        add_run(instance, "kpis", dg.DagsterRunStatus.SUCCESS)  # nor does a finished KPI run
        assert isinstance(evaluate(instance), dg.RunRequest)
        # (A QUEUED run needs a remote origin to be built by hand; it is in the same status filter.)
        for status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED):
            run = add_run(instance, "kpis", status)
            skip = evaluate(instance)
            assert isinstance(skip, dg.SkipReason) and run.run_id in skip.skip_message, status
            instance.delete_run(run.run_id)
        assert isinstance(evaluate(instance), dg.RunRequest)


def _offline_settings(tmp_path):
    from scbda_assets.settings import Settings

    return Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_SPARK_REMOTE": "local"})
