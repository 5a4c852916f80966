"""`scbda archive --status` and the archive assets' status metadata, checked against the archived files themselves;
the same JSON in Redis under `archive:status` (with the key prefix)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from scbda_assets.archive import quarantine
from scbda_assets.archive.cli import archive_once
from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range
from scbda_assets.archive.status import archive_status
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import ARCHIVE_STATUS_KEY
from scbda_assets.settings import Settings
from scbda_assets.timeutil import floor_hour
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import DATA_START, NOW


def _archived_frame(spark, store, collection):
    return spark.read.option("basePath", store.uri(collection)).parquet(store.uri(collection))


def test_status_matches_the_archived_files_and_is_published(test_env, spark_server, mongo_db, spark, redis_client):
    now = dt.datetime.now(dt.UTC)
    start = floor_hour(now) - dt.timedelta(hours=5)
    docs = {"orders_fact": documents.orders(start, now, 900, seed=91),
            "inventory_fact": documents.inventory(start, now, 300, seed=92)}
    documents.insert_all(mongo_db, docs)
    env = {**test_env, "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001",
           "SCBDA_KEY_PREFIX": "t1:"}
    summary = archive_once(Settings.from_env(env), dry_run=False)
    assert summary["batch"]["status"] == "complete" and summary["status_published"] is True
    store = ArchiveStore(env["SCBDA_ARCHIVE_URI"])

    result = subprocess.run([sys.executable, "-m", "scbda_assets.cli", "archive", "--status"], text=True,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **env},
                            capture_output=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    status = json.loads(result.stdout)
    for collection, field in (("orders_fact", "order_ts"), ("inventory_fact", "inventory_ts")):
        frame = _archived_frame(spark, store, collection)
        row = frame.selectExpr("count(*) AS n", f"min({field}) AS lo", f"max({field}) AS hi").collect()[0]
        entry = status["collections"][collection]
        assert entry["documents"] == row["n"] > 0
        assert entry["oldest_event_ts"] == row["lo"].astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        assert entry["newest_event_ts"] == row["hi"].astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        files = store.list_files(collection, recursive=True)
        assert entry["bytes_written"] == sum(store.size(path) for path in files if path.endswith(".parquet"))
        assert entry["source_bytes"] > entry["documents"] * 50
    assert status["collections"]["shipments_fact"]["documents"] == 0
    (run,) = status["last_runs"]
    assert run["batch_id"] == summary["batch"]["batch_id"] and run["documents"] == summary["batch"]["record_count"]
    assert run["duration_s"] > 0 and run["mb_per_s"] == pytest.approx(run["source_bytes"] / 2**20 / run["duration_s"],
                                                                       rel=1e-2)
    assert status["incomplete_batches"] == [] and status["lease"]["owner"] is None
    published = json.loads(redis_client.get(f"t1:{ARCHIVE_STATUS_KEY}"))
    assert published["collections"] == status["collections"] and published["last_runs"] == status["last_runs"]
    assert 0 < redis_client.ttl(f"t1:{ARCHIVE_STATUS_KEY}") <= 7 * 24 * 3600

    # The dashboard reads exactly what the archive publishes (one contract, two sides).
    from dashboard import data as dashboard_data

    shown = dashboard_data.read_snapshot(redis_client, Settings.from_env(env), now=now).archive
    orders = shown.collections.set_index("collection").loc["orders_fact"]
    assert orders["documents"] == status["collections"]["orders_fact"]["documents"]
    assert orders["bytes"] == status["collections"]["orders_fact"]["source_bytes"] and orders["oldest_event"] != ""
    assert shown.last_runs["seconds"].tolist() == [run["duration_s"]] and shown.last_runs["bytes"].tolist() == [
        run["source_bytes"]]


def test_an_incomplete_batch_shows_in_the_status(mongo_db, spark, store, hot):
    def crash(step):
        if step == "manifest":
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        archive_range(mongo_db, spark, store, start=DATA_START, end=NOW, now=NOW, safety_minutes=60, checkpoint=crash)
    status = archive_status(mongo_db, store, now=NOW)
    (incomplete,) = status["incomplete_batches"]
    assert incomplete["status"] == "verified" and incomplete["cutoff"] == "2026-11-20T11:00:00Z"
    assert status["totals"]["documents"] == 0 and status["last_runs"] == []


def test_status_reads_the_catalog_not_every_manifest(mongo_db, spark, store, hot):
    """After the first sync, the status comes from the catalog: a listing-free read."""
    archive_range(mongo_db, spark, store, start=DATA_START, end=NOW, now=NOW, safety_minutes=60)
    first = archive_status(mongo_db, store, now=NOW)
    listed = []
    original = store.list_files
    store.list_files = lambda *args, **kwargs: listed.append(args) or original(*args, **kwargs)
    again = archive_status(mongo_db, store, now=NOW)
    # Only the incomplete markers and the quarantine are listed (small folders: the record that never forgets a
    # batch, and the files moved aside), never the manifests.
    assert [args[0] for args in listed] == [INCOMPLETE_DIR, quarantine.QUARANTINE_DIR]
    assert again["collections"] == first["collections"] and first["totals"]["documents"] > 0


def test_status_and_dry_run_together_is_one_clear_line(test_env):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env}
    result = subprocess.run([sys.executable, "-m", "scbda_assets.cli", "archive", "--status", "--dry-run"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "cannot be combined" in result.stderr
