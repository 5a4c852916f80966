"""Issue 21 item 8 / SPEC §7: a stream restarted over stored time is refused with one line. Three hours generated,
two archived (real Spark, the archive's own protocol); then `scbda generate` over the same window after deleting
generator_state, and on a fresh MongoDB with the same archive root. Business ids in both stores are unchanged."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow.dataset as ds
import pymongo
import pytest
from click.testing import CliRunner

from scbda_assets.archive import catalog
from scbda_assets.archive.protocol import archive_range
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.cli import main
from scbda_assets.generator.backfill import backfill
from scbda_assets.timeutil import parse_iso

END = dt.datetime(2026, 5, 5, 12, 0, tzinfo=dt.UTC)
IDS = {"orders_fact": "order_id", "shipments_fact": "shipment_id", "inventory_fact": "snapshot_id"}
GENERATE = ["generate", "--minutes", "180", "--rate", "60", "--seed", "3", "--end", END.isoformat(), "--no-progress"]


def _ids(db, store: ArchiveStore) -> dict[str, tuple[Counter, Counter]]:
    found = {}
    for name, field in IDS.items():
        hot = Counter(doc[field] for doc in db[name].find({}, {field: 1}))
        path = store.uri(name).removeprefix("file://")
        cold = Counter()
        if store.list_files(name, recursive=True):
            cold = Counter(ds.dataset(path, format="parquet", partitioning="hive").to_table(
                columns=[field])[field].to_pylist())
        found[name] = (hot, cold)
    return found


@pytest.mark.slow
def test_a_stream_restarted_over_archived_hours_is_refused(scbda_environ, settings, mongo_db, spark):
    backfill(settings, minutes=180, rate=60, seed=3, end=END, progress=False)
    store = ArchiveStore(settings.archive_uri)
    manifest = archive_range(mongo_db, spark, store, start=END - dt.timedelta(hours=4),
                             end=END - dt.timedelta(hours=1), now=END, safety_minutes=60)
    assert manifest is not None and manifest["collections"]["orders_fact"]["record_count"] > 0
    before = _ids(mongo_db, store)
    assert before["orders_fact"][1] and before["inventory_fact"][1]  # archived hours
    for name, (hot, cold) in before.items():
        assert max(cold.values(), default=1) == 1 and not set(hot) & set(cold), name
    archived_until = max(parse_iso(entry["max_event_ts"]) for batch in catalog.batches(mongo_db, store)
                         for entry in batch["collections"].values() if entry.get("max_event_ts"))

    # 1. generator_state deleted: the same window again is refused (MongoDB still holds the newest hour).
    mongo_db.generator_state.delete_one({"_id": "simulation"})
    refused = CliRunner().invoke(main, GENERATE)
    assert refused.exit_code == 2, refused.output
    (line,) = refused.stderr.strip().splitlines()
    assert "would rewrite time already stored" in line and "MongoDB" in line, line
    assert _ids(mongo_db, store) == before

    # 2. A fresh MongoDB on the old archive root: refused, naming the archive's newest event time.
    fresh = f"{settings.mongo_db}_fresh"
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    try:
        result = CliRunner().invoke(main, GENERATE, env={"SCBDA_MONGO_DB": fresh})
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert f"the archive ({store.root_uri})" in line and f"{archived_until:%Y-%m-%dT%H:%M:%SZ}" in line, line
        assert sum(client[fresh][name].count_documents({}) for name in IDS) == 0
        # After the archive's newest time a new stream may start.
        later = ["generate", "--minutes", "5", "--rate", "60", "--seed", "3",
                 "--end", (archived_until + dt.timedelta(minutes=6)).isoformat(), "--no-progress"]
        assert CliRunner().invoke(main, later, env={"SCBDA_MONGO_DB": fresh}).exit_code == 0
    finally:
        client.drop_database(fresh)
        client.close()
    assert _ids(mongo_db, store) == before  # nothing in both stores, nothing twice
