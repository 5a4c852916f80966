"""The code location loads, and holds exactly the assets, checks, jobs, schedules and sensors of SPEC §3."""

from __future__ import annotations

import dagster as dg

from scbda_assets.definitions import build_definitions
from scbda_assets.settings import Settings

ASSETS_BY_GROUP = {
    "reference": {"regions_dim", "dcs_dim", "skus_dim", "suppliers_dim"},
    "hot_store": {"orders_fact", "shipments_fact", "inventory_fact", "inventory_state"},
    "archive": {"orders_archive", "shipments_archive", "inventory_archive"},
    "kpis": {
        "kpi_inventory_level",
        "kpi_stockout_risk",
        "kpi_supplier_performance",
        "kpi_dc_utilization",
        "kpi_regional_fulfillment",
    },
    "history": {"regional_daily_history", "orders_hourly", "shipments_history"},
}
JOBS = {"generator_job", "kpi_job", "archive_job", "history_job", "quality_job"}
SCHEDULES = {"generator_schedule", "kpi_schedule", "history_schedule", "quality_schedule"}
SENSORS = {"archive_size_sensor", "dagster_run_retention_sensor"}
CHECKS = {
    *(f"{fact}:schema_valid" for fact in ("orders_fact", "shipments_fact", "inventory_fact")),
    *(f"{table}:business_rules" for table in ("orders_fact", "shipments_fact", "inventory_fact", "inventory_state")),
    "orders_fact:events_fresh",
    *(f"{kpi}:sane_values" for kpi in ASSETS_BY_GROUP["kpis"]),
    *(f"{archive}:archive_verified" for archive in ASSETS_BY_GROUP["archive"]),
    "orders_hourly:orders_hourly_match_raw_events",
}


def _repository(tmp_path):
    defs = build_definitions(Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_SPARK_REMOTE": "local"}))
    return defs, defs.get_repository_def()


def test_exact_assets_and_groups(tmp_path):
    _, repo = _repository(tmp_path)
    graph = repo.asset_graph
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set().union(*ASSETS_BY_GROUP.values())
    for group, names in ASSETS_BY_GROUP.items():
        assert {k for k in keys if graph.get(dg.AssetKey(k)).group_name == group} == names, group


def test_exact_jobs_schedules_sensors(tmp_path):
    _, repo = _repository(tmp_path)
    jobs = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert jobs == JOBS
    assert {s.name for s in repo.schedule_defs} == SCHEDULES
    assert {s.name for s in repo.sensor_defs} == SENSORS


def test_exact_asset_checks(tmp_path):
    _, repo = _repository(tmp_path)
    assert {key.to_user_string() for key in repo.asset_graph.asset_check_keys} == CHECKS


def test_automation_runs_by_default(tmp_path):
    _, repo = _repository(tmp_path)
    for automation in [*repo.schedule_defs, *repo.sensor_defs]:
        assert automation.default_status == dg.DefaultScheduleStatus.RUNNING or (
            automation.default_status == dg.DefaultSensorStatus.RUNNING
        ), automation.name


def test_archive_assets_are_hourly_partitioned(tmp_path):
    _, repo = _repository(tmp_path)
    for name in ASSETS_BY_GROUP["archive"]:
        partitions = repo.asset_graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.HourlyPartitionsDefinition), name


def test_kpi_assets_have_freshness_policies(tmp_path):
    _, repo = _repository(tmp_path)
    for name in ASSETS_BY_GROUP["kpis"]:
        policy = repo.asset_graph.get(dg.AssetKey(name)).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta().total_seconds() == 180, name
