"""SPEC §8.9 with real processes: a backfill SIGKILLed after inserting a batch of facts and before committing its
clock, then archival, then the backfill resumed (it re-inserts the same business ids), then archival again. Every
business id of a clean run of the same backfill is afterwards in exactly one place, once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pymongo
import pytest

from scbda_assets.archive.schema import SPECS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.timeutil import floor_minute

# Writers run as real subprocesses that read the wall clock: under --shift-clock-days this module keeps the real one.
pytestmark = pytest.mark.subprocess_clock

# The backfill process kills itself (SIGKILL) at its second clock commit: batch 1 committed, batch 2 inserted only.
KILLED_BACKFILL = textwrap.dedent("""
    import os, signal, sys
    from scbda_assets.generator import store
    calls = {"n": 0}
    commit = store.save_state
    def save_state(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return commit(*args, **kwargs)
    store.save_state = save_state
    from scbda_assets.cli import main
    sys.argv = ["scbda", *sys.argv[1:]]
    main()
""")


def _business_ids(spark, store: ArchiveStore, db) -> dict[str, tuple[Counter, Counter]]:
    found = {}
    for spec in SPECS:
        cold = Counter()
        if store.list_files(spec.collection, recursive=True):
            frame = spark.read.option("basePath", store.uri(spec.collection)).parquet(store.uri(spec.collection))
            cold = Counter(frame.select(spec.id_field).toArrow()[spec.id_field].to_pylist())
        hot = Counter(doc[spec.id_field] for doc in db[spec.collection].find({}, {spec.id_field: 1}))
        found[spec.collection] = (hot, cold)
    return found


@pytest.mark.slow
def test_backfill_killed_before_its_clock_commit_then_archival_then_resume(test_env, spark_server, mongo_db, spark):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env,
           "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001",
           "SCBDA_ARCHIVE_SAFETY_MINUTES": "16", "SCBDA_LATE_EVENT_FRACTION": "0.05"}
    end = floor_minute(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    generate = ["generate", "--minutes", "180", "--rate", "300", "--end", end.isoformat(), "--seed", "7",
                "--no-progress"]

    killed = subprocess.run([sys.executable, "-c", KILLED_BACKFILL, *generate], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    clock = mongo_db.generator_state.find_one({"_id": "simulation"})["as_of"]
    inserted_after_clock = mongo_db.orders_fact.count_documents({"order_ts": {"$gte": clock}})
    assert inserted_after_clock > 0, "the killed batch inserted facts past the committed clock"

    archive = [sys.executable, "-m", "scbda_assets.cli", "archive"]
    first = subprocess.run(archive, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    store = ArchiveStore(test_env["SCBDA_ARCHIVE_URI"])
    assert store.list_files("orders_fact", recursive=True), "archival ran"
    # Nothing at or after the committed clock was archived: the resumed backfill may write it again.
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$gte": clock}}) == inserted_after_clock

    resumed = subprocess.run([sys.executable, "-m", "scbda_assets.cli", *generate], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    second = subprocess.run(archive, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]

    # (a reference stream of its own: a new stream on this archive root would be refused as a rewrite of its hours)
    reference_env = {**env, "SCBDA_MONGO_DB": f"{test_env['SCBDA_MONGO_DB']}_reference",
                     "SCBDA_ARCHIVE_URI": f"{test_env['SCBDA_ARCHIVE_URI']}-reference"}
    clean = subprocess.run([sys.executable, "-m", "scbda_assets.cli", *generate], env=reference_env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    client = pymongo.MongoClient(test_env["SCBDA_MONGO_URI"])
    try:
        reference_db = client[reference_env["SCBDA_MONGO_DB"]]
        expected = {spec.collection: {doc[spec.id_field] for doc in reference_db[spec.collection].find(
            {}, {spec.id_field: 1})} for spec in SPECS}
    finally:
        client.drop_database(reference_env["SCBDA_MONGO_DB"])
        client.close()

    found = _business_ids(spark, store, mongo_db)
    for collection, (hot, cold) in found.items():
        assert max(cold.values(), default=1) == 1, f"{collection}: twice in the archive"
        assert max(hot.values(), default=1) == 1, f"{collection}: twice in MongoDB"
        assert not set(hot) & set(cold), f"{collection}: {len(set(hot) & set(cold))} ids in both stores"
        assert set(hot) | set(cold) == expected[collection], (
            f"{collection}: lost {len(expected[collection] - set(hot) - set(cold))}, "
            f"extra {len(set(hot) | set(cold) - expected[collection])}")
        print(f"{collection}: {len(hot)} hot, {len(cold)} archived, {len(expected[collection])} expected")
    assert len(found["orders_fact"][1]) > 0
