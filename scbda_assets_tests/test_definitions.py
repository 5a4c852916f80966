"""The code location loads, and holds exactly the assets, checks, jobs, schedules and sensors of SPEC §3."""

from __future__ import annotations

import dagster as dg
import pytest

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
    "history": {"orders_hourly", "shipments_history"},
    "decisions": {"forecast_scores"},
}
JOBS = {"generator_job", "kpi_job", "archive_job", "quality_job"}
SCHEDULES = {"generator_schedule", "kpi_schedule", "quality_schedule"}
SENSORS = {"archive_size_sensor", "dagster_run_retention_sensor", "alert_webhook_sensor"}
CHECKS = {
    *(f"{fact}:schema_valid" for fact in ("orders_fact", "shipments_fact", "inventory_fact")),
    *(f"{table}:business_rules" for table in ("orders_fact", "shipments_fact", "inventory_fact", "inventory_state")),
    "orders_fact:events_fresh",
    *(f"{kpi}:sane_values" for kpi in ASSETS_BY_GROUP["kpis"]),
    *(f"{archive}:archive_verified" for archive in ASSETS_BY_GROUP["archive"]),
    *(f"{archive}:archive_nothing_quarantined" for archive in ASSETS_BY_GROUP["archive"]),
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


def _ui_descriptions(repo) -> dict[str, str | None]:
    graph = repo.asset_graph
    texts = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    texts.update({key.to_user_string(): graph.get_check_spec(key).description for key in graph.asset_check_keys})
    texts.update({f"job {job.name}": job.description for job in repo.get_all_jobs() if not job.name.startswith("__")})
    texts.update({f"{a.name}": a.description for a in [*repo.schedule_defs, *repo.sensor_defs]})
    return texts


def test_every_asset_and_check_has_a_description_kinds_and_an_owner(tmp_path):
    _, repo = _repository(tmp_path)
    graph = repo.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.kinds and node.owners, key.to_user_string()
        assert node.code_version, key.to_user_string()
    for key in graph.asset_check_keys:  # a check has no kinds or owners of its own in Dagster: its asset's apply
        assert graph.get_check_spec(key).description, key.to_user_string()
        checked = graph.get(key.asset_key)
        assert checked.kinds and checked.owners, key.to_user_string()


def test_no_spec_section_references_in_ui_descriptions(tmp_path):
    """SPEC.md is not in the repository: descriptions link docs/ instead."""
    _, repo = _repository(tmp_path)
    offending = {name: text for name, text in _ui_descriptions(repo).items() if text and "SPEC" in text}
    assert offending == {}


def test_a_backfill_of_archive_hours_is_one_run(tmp_path):
    """What the backfill daemon launches for a UI backfill of 6 hours of the three archive assets: one run whose
    partition range covers the 6 hours (one batch, one lease), not 6 queued runs."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    _, repo = _repository(tmp_path)
    graph = repo.asset_graph
    for name in ASSETS_BY_GROUP["archive"]:
        assert graph.get(dg.AssetKey(name)).backfill_policy == dg.BackfillPolicy.single_run(), name
    hours = ["2026-11-20-10:00", "2026-11-20-11:00", "2026-11-20-12:00", "2026-11-20-13:00", "2026-11-20-14:00",
             "2026-11-20-15:00"]
    requested = [AssetKeyPartitionKey(dg.AssetKey(name), hour) for name in ASSETS_BY_GROUP["archive"] for hour in hours]
    with dg.DagsterInstance.ephemeral() as instance:
        runs = build_run_requests_with_backfill_policies(requested, graph, instance)
    assert len(runs) == 1
    [run] = runs
    assert {key.to_user_string() for key in run.asset_selection} == ASSETS_BY_GROUP["archive"]
    assert (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]) == (hours[0], hours[-1])


def test_collection_assets_have_a_column_schema(tmp_path):
    _, repo = _repository(tmp_path)
    graph = repo.asset_graph
    for name in ASSETS_BY_GROUP["reference"] | ASSETS_BY_GROUP["hot_store"]:
        schema = graph.get(dg.AssetKey(name)).metadata["dagster/column_schema"]
        columns = {column.name: column.type for column in schema.columns}
        assert len(columns) >= 4, name
    orders = graph.get(dg.AssetKey("orders_fact")).metadata["dagster/column_schema"]
    assert {c.name: c.type for c in orders.columns}["order_ts"] == "date"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Dagster's own snapshot code
def test_secrets_from_the_environment_are_env_vars_not_plain_config(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("SCBDA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SCBDA_HOME", str(tmp_path))
    monkeypatch.setenv("SCBDA_SPARK_REMOTE", "local")
    monkeypatch.setenv("SCBDA_MONGO_URI", "mongodb://scbda:hunter2@db.example:27017/?authSource=admin")
    monkeypatch.setenv("SCBDA_REDIS_URL", "redis://:hunter3@cache.example:6379/0")
    from scbda_assets import definitions

    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    lazy = definitions.defs()  # the lazy code location, as Dagster loads it
    ui = serialize_value(RepositorySnap.from_def(lazy.get_repository_def()))  # what the webserver is sent
    assert "hunter" not in ui and "SCBDA_MONGO_URI" in ui
    resources = lazy.resources
    assert isinstance(resources["mongo"].uri, dg.EnvVar) and isinstance(resources["redis"].url, dg.EnvVar)
    assert isinstance(resources["settings"].mongo_uri, dg.EnvVar) and isinstance(resources["settings"].redis_url,
                                                                                   dg.EnvVar)
    # Dagster resolves them when a run or sensor initializes the resources.
    settings = resources["settings"].process_config_and_initialize().get()
    assert settings.mongo_uri.endswith("@db.example:27017/?authSource=admin") and "hunter3" in settings.redis_url
    with resources["mongo"].process_config_and_initialize_cm() as mongo:
        assert mongo.uri.startswith("mongodb://scbda:hunter2@")
