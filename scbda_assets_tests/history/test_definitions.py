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
    for name, fact, archive in (("orders_hourly", "orders_fact", "orders_archive"),
                                ("shipments_history", "shipments_fact", "shipments_archive")):
        history = graph.get(dg.AssetKey(name))  # lineage from both stores, partitioned like the archive
        assert history.group_name == "history" and history.partitions_def == graph.get(
            dg.AssetKey(archive)).partitions_def
        assert {dg.AssetKey(fact), dg.AssetKey(archive)} <= set(history.parent_keys)
    assert repo.get_job("archive_job").tags["scbda/stage"] == "archive"
    assert not any(job.name.startswith("history") for job in repo.get_all_jobs())  # no schedule of its own: the
    # KPI runs keep the layer current, the UI backfills it
    sensor = repo.get_sensor_def("archive_size_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.job_name == "archive_job"
