"""The archive assets in Dagster: a partition-range run of archive_job archives its window as one batch, records
metadata, and the code location holds the archive and history definitions."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout, manifest_store
from scbda_assets.archive.definitions import defs as archive_defs
from scbda_assets.archive.cli import archive_once
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.resources import build_resources
from scbda_assets.settings import Settings
from scbda_assets.timeutil import HOUR, floor_hour
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import assert_each_once


def _hot(mongo_db, hours: int = 5):
    now = dt.datetime.now(dt.UTC)
    start = floor_hour(now) - dt.timedelta(hours=hours)
    docs = {"orders_fact": documents.orders(start, now, 500, seed=41),
            "inventory_fact": documents.inventory(start, now, 100, seed=42)}
    documents.insert_all(mongo_db, docs)
    return start, docs


def test_partition_range_run_archives_the_window_as_one_batch(mongo_db, spark, spark_settings):
    start, docs = _hot(mongo_db)
    first, last = start, start + dt.timedelta(hours=1)
    result = dg.materialize(
        archive_defs.assets,
        resources=build_resources(spark_settings),
        tags={"scbda/stage": "archive", ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(first),
              ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last)},
    )
    assert result.success
    store = ArchiveStore(spark_settings.archive_uri)
    manifests = store.list_files("_manifests", prefix="2")
    assert len({manifest_store.parse_name(path)[0] for path in manifests}) == 1  # one batch (its last two versions)
    manifest = manifest_store.read_manifest(store, manifest_store.parse_name(manifests[0])[0])
    expected = sum(first <= d["order_ts"] < last + HOUR for d in docs["orders_fact"])
    assert manifest["collections"]["orders_fact"]["record_count"] == expected > 0
    assert manifest["collections"]["orders_fact"]["partitions"] == [
        layout.partition_dir(first), layout.partition_dir(last)]
    orders = result.asset_materializations_for_node("archive_assets")
    by_key = {m.asset_key.to_user_string(): m for m in orders}
    assert set(by_key) == {"orders_archive", "shipments_archive", "inventory_archive"}
    assert by_key["orders_archive"].metadata["dagster/row_count"].value == expected
    assert by_key["orders_archive"].metadata["batch_id"].value == manifest["batch_id"]
    assert by_key["shipments_archive"].metadata["dagster/row_count"].value == 0
    assert_each_once(spark, store, mongo_db, docs)


def test_archive_once_dry_run_changes_nothing_and_run_archives(test_env, spark_server, mongo_db, spark):
    _, docs = _hot(mongo_db)
    settings = Settings.from_env({**test_env, "SCBDA_SPARK_REMOTE": spark_server,
                                  "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001"})
    dry = archive_once(settings, dry_run=True)
    assert dry["archive"] and dry["dry_run"] and dry["documents"] > 0 and len(dry["hours"]) >= 3
    assert mongo_db.orders_fact.count_documents({}) == len(docs["orders_fact"])
    done = archive_once(settings, dry_run=False)
    assert done["batch"]["status"] == "complete" and done["batch"]["record_count"] == dry["documents"]
    assert done["data_size_after_mb"] < done["data_size_mb"]
    assert_each_once(spark, ArchiveStore(settings.archive_uri), mongo_db, docs)


def test_archive_once_below_threshold_does_nothing(settings, mongo_db):
    _hot(mongo_db)
    summary = archive_once(settings, dry_run=False)
    assert not summary["archive"] and "not above the threshold 300.0 MB" in summary["reason"]
    assert "batch" not in summary
