"""Archive fixtures: a small hot store with hand-made facts around a fixed clock, and helpers that say where each
document is (MongoDB or archive), read with Spark."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from scbda_assets.archive.schema import SPECS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets_tests import documents

NOW = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)  # safety 60 min -> horizon 11:00
DATA_START = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def hot(mongo_db):
    """Orders, shipments and inventory from 08:00 to 12:30 (3 eligible hours: 08, 09, 10)."""
    docs = {
        "orders_fact": documents.orders(DATA_START, NOW, 450, seed=11),
        "shipments_fact": documents.shipments(DATA_START, NOW, 60, seed=12, received_at=DATA_START + dt.timedelta(hours=2)),
        "inventory_fact": documents.inventory(DATA_START, NOW, 90, seed=13),
    }
    documents.insert_all(mongo_db, docs)
    return docs


@pytest.fixture
def store(spark_settings) -> ArchiveStore:
    return ArchiveStore(spark_settings.archive_uri)


def archived_ids(spark, store: ArchiveStore, collection: str) -> Counter:
    """Every business id in the collection's archive folder, with multiplicity (duplicates would show as > 1)."""
    if not store.list_files(collection, recursive=True):
        return Counter()
    spec = next(s for s in SPECS if s.collection == collection)
    frame = spark.read.option("basePath", store.uri(collection)).parquet(store.uri(collection))
    table = frame.select("_id", spec.id_field).toArrow()
    return Counter(table["_id"].to_pylist())


def hot_ids(db, collection: str) -> Counter:
    return Counter(str(doc["_id"]) for doc in db[collection].find({}, {"_id": 1}))


def assert_each_once(spark, store, db, original: dict[str, list[dict]]) -> dict[str, tuple[int, int]]:
    """Every original document is in exactly one place (hot xor cold, once); returns (hot, cold) counts."""
    counts = {}
    for collection, docs in original.items():
        expected = {str(doc["_id"]) for doc in docs}
        cold, hot = archived_ids(spark, store, collection), hot_ids(db, collection)
        assert max(cold.values(), default=1) == 1, f"{collection}: duplicated in the archive"
        assert not set(cold) & set(hot), f"{collection}: in both stores"
        assert set(cold) | set(hot) == expected, f"{collection}: lost {len(expected - set(cold) - set(hot))}"
        counts[collection] = (len(hot), len(cold))
    return counts
