"""The archive and history definitions merged into the code location: names, tags, default statuses (no services)."""

from __future__ import annotations

import dagster as dg

from scbda_assets.definitions import build_definitions
from scbda_assets.history.definitions import defs as history_defs
from scbda_assets.settings import Settings


def test_archive_and_history_wiring(tmp_path):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_SPARK_REMOTE": "local"})
    repo = build_definitions(settings).get_repository_def()
    assert {key for spec in history_defs.assets for key in spec.keys} <= set(repo.asset_graph.get_all_asset_keys())
    graph = repo.asset_graph
    for name in ("orders_archive", "shipments_archive", "inventory_archive"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "archive"
        assert isinstance(node.partitions_def, dg.HourlyPartitionsDefinition)
        assert dg.AssetKey(name.replace("_archive", "_fact")) in node.parent_keys
    history = graph.get(dg.AssetKey("regional_daily_history"))
    assert history.group_name == "history"
    assert {dg.AssetKey("orders_fact"), dg.AssetKey("orders_archive")} <= set(history.parent_keys)
    assert repo.get_job("archive_job").tags["scbda/stage"] == "archive"
    assert repo.get_job("history_job").tags["scbda/stage"] == "history"
    schedule = repo.get_schedule_def("history_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.job_name == "history_job"
    sensor = repo.get_sensor_def("archive_size_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.job_name == "archive_job"
