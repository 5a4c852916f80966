"""What another engine sees: DuckDB over the hour folders (Hive layout, as an analyst would point it), next to
MongoDB, and what only staging holds."""

from __future__ import annotations

from collections import Counter

import pyarrow.dataset as ds

from scbda_assets.archive import layout
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets_tests.archive.conftest import hot_ids


def duckdb_ids(store: ArchiveStore, collection: str) -> Counter:
    """Every ``_id`` DuckDB reads from ``<root>/<collection>/event_date=*/hour=*/*.parquet``, with multiplicity."""
    import duckdb

    if not store.list_files(collection, recursive=True):
        return Counter()
    pattern = f"{store.path(collection)}/event_date=*/hour=*/*.parquet"
    rows = duckdb.sql(f"SELECT _id FROM read_parquet('{pattern}', hive_partitioning = true)").fetchall()
    return Counter(row[0] for row in rows)


def staged_ids(store: ArchiveStore, collection: str) -> set[str]:
    files = [path for path in store.list_files(layout.STAGING_DIR, recursive=True)
             if f"/{collection}/event_date=" in path and path.endswith(".parquet")]
    if not files:
        return set()
    table = ds.dataset([store.path(p) for p in files], filesystem=store.fs, format="parquet").to_table(columns=["_id"])
    return set(table["_id"].to_pylist())


def assert_readers_see_no_overlap(store: ArchiveStore, db, original: dict) -> None:
    """At any moment: no row twice in the hour folders, no row both there and in MongoDB, and nothing lost (an id
    neither in MongoDB nor in the hour folders is in a batch's staging files)."""
    for collection, docs in original.items():
        cold, hot = duckdb_ids(store, collection), hot_ids(db, collection)
        assert max(cold.values(), default=1) == 1, f"{collection}: a row twice in the hour folders"
        both = set(cold) & set(hot)
        assert not both, f"{collection}: {len(both)} ids both in the hour folders and in MongoDB"
        expected = {str(doc["_id"]) for doc in docs}
        lost = expected - set(cold) - set(hot) - staged_ids(store, collection)
        assert not lost, f"{collection}: {len(lost)} ids lost"


def assert_readers_see_each_once(store: ArchiveStore, db, original: dict) -> dict[str, tuple[int, int]]:
    """Converged: DuckDB's ids over the hour folders + MongoDB's ids = the expected ids, each once."""
    counts = {}
    for collection, docs in original.items():
        cold, hot = duckdb_ids(store, collection), hot_ids(db, collection)
        expected = {str(doc["_id"]) for doc in docs}
        assert max(cold.values(), default=1) == 1, f"{collection}: a row twice in the hour folders"
        assert not set(cold) & set(hot), f"{collection}: in both stores"
        assert sum(cold.values()) + sum(hot.values()) == len(expected), collection
        assert set(cold) | set(hot) == expected, collection
        counts[collection] = (sum(hot.values()), sum(cold.values()))
    return counts
