"""Archive verification on a real archive (written by Spark through the zero-loss protocol): it passes, and each
way of breaking an archive is named."""

from __future__ import annotations

import datetime as dt
import json

from scbda_assets.archive import layout
from scbda_assets.archive.cli import archive_once
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.quality.archive_verification import verify_recent_batches
from scbda_assets.settings import Settings
from scbda_assets.timeutil import floor_hour
from scbda_assets_tests import documents


def test_verification_passes_then_names_each_breakage(test_env, spark_server, mongo_db):
    now = dt.datetime.now(dt.UTC)
    start = floor_hour(now) - dt.timedelta(hours=4)
    orders = documents.orders(start, now, 400, seed=61)
    documents.insert_all(mongo_db, {"orders_fact": orders})
    settings = Settings.from_env({**test_env, "SCBDA_SPARK_REMOTE": spark_server,
                                  "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001"})
    assert archive_once(settings, dry_run=False)["batch"]["status"] == "complete"
    store = ArchiveStore(settings.archive_uri)

    report = verify_recent_batches(store, mongo_db, "orders_fact")
    assert report["batches"] == 1 and report["records"] > 0 and report["problems"] == []

    # An archived event comes back into MongoDB under a NEW _id (a retried writer re-inserting it): only the
    # business id shows it.
    archived = next(doc for doc in orders if doc["order_ts"] < start + dt.timedelta(hours=1))
    again = {key: value for key, value in archived.items() if key != "_id"}
    mongo_db.orders_fact.insert_one(again)
    assert verify_recent_batches(store, mongo_db, "orders_fact")["problems"] == [
        f"{_batch_id(store)}: 1 archived business id(s) also in MongoDB"
    ]
    mongo_db.orders_fact.delete_one({"_id": again["_id"]})

    # The manifest disagrees with the files.
    manifest_path = store.list_files(layout.MANIFEST_DIR, prefix="2")[0]
    manifest = json.loads(store.read_text(manifest_path))
    real = manifest["collections"]["orders_fact"]["record_count"]
    manifest["collections"]["orders_fact"]["record_count"] = real + 1
    store.delete_file(manifest_path)  # tampering by hand: the protocol itself never rewrites a manifest version
    store.write_new_text(manifest_path, json.dumps(manifest))
    (problem,) = verify_recent_batches(store, mongo_db, "orders_fact")["problems"]
    assert problem.endswith(f"{real} rows in files, manifest says {real + 1}")

    # A file is gone.
    store.delete_file(manifest["collections"]["orders_fact"]["files"][0])
    (problem,) = verify_recent_batches(store, mongo_db, "orders_fact")["problems"]
    assert "file(s) missing" in problem


def _batch_id(store: ArchiveStore) -> str:
    return json.loads(store.read_text(store.list_files(layout.MANIFEST_DIR, prefix="2")[0]))["batch_id"]
