"""The cold reader quarantines a file that is not readable Parquet, reads the rest of the hour, skips a file that
vanished, and lets a transient I/O error fail the read without moving anything (real files, no services)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scbda_assets.archive import quarantine
from scbda_assets.archive.layout import hour_dir
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import cold

HOUR = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
SCHEMA = pa.schema([("order_id", pa.string())])


def _hour_with_files(tmp_path) -> tuple[ArchiveStore, list[str]]:
    store = ArchiveStore((tmp_path / "archive").as_uri())
    folder = hour_dir("orders_fact", HOUR)
    store.create_dir(folder)
    files = []
    for n in range(3):
        path = f"{folder}/part-b{n}-00000.snappy.parquet"
        pq.write_table(pa.table({"order_id": [f"O-{n}-{i}" for i in range(10)],
                                 cold.RAW_COLUMN: pa.nulls(10, pa.string())}), store.path(path))
        files.append(path)
    return store, files


def test_a_torn_file_is_quarantined_and_the_rest_is_read(tmp_path):
    store, files = _hour_with_files(tmp_path)
    with open(store.path(files[1]), "r+b") as handle:
        handle.truncate(store.size(files[1]) // 2)
    table = cold.read_files(store, cold.hour_files(store, "orders_fact", HOUR), ["order_id"], SCHEMA)
    assert sorted(table["order_id"].to_pylist()) == sorted(f"O-{n}-{i}" for n in (0, 2) for i in range(10))
    (entry,) = quarantine.quarantined(store)
    assert entry["original"] == files[1] and entry["hour"] == "2026-11-20T10:00:00Z" and entry["reason"]
    assert cold.hour_files(store, "orders_fact", HOUR) == [files[0], files[2]]
    # Quarantined again under a new name if a torn file of the same name comes back: nothing is overwritten.
    with open(store.path(files[1]), "wb") as handle:
        handle.write(b"not parquet")
    cold.read_files(store, [files[1]], ["order_id"], SCHEMA)
    assert sorted(e["quarantined_as"] for e in quarantine.quarantined(store)) == [
        f"_quarantine/{files[1]}", f"_quarantine/{files[1]}.1"]
    assert {e["original"] for e in quarantine.quarantined(store)} == {files[1]}


def test_a_vanished_file_is_skipped(tmp_path):
    store, files = _hour_with_files(tmp_path)
    store.delete_file(files[0])
    assert cold.read_files(store, files, ["order_id"], SCHEMA).num_rows == 20
    assert quarantine.quarantined(store) == []


def test_a_transient_io_error_fails_the_read_and_moves_nothing(tmp_path, monkeypatch):
    store, files = _hour_with_files(tmp_path)

    def datanode_down(*args, **kwargs):
        raise OSError("Could not obtain block: BP-1 blk_1073741825 (a datanode is down)")

    monkeypatch.setattr(cold.pq, "read_table", datanode_down)
    with pytest.raises(OSError, match="Could not obtain block"):
        cold.read_files(store, files, ["order_id"], SCHEMA)
    assert quarantine.quarantined(store) == [] and cold.hour_files(store, "orders_fact", HOUR) == files


def test_the_earliest_order_of_an_archived_store_is_its_first_order_not_its_hour(tmp_path, mongo_db):
    """A history layer created after archival (MongoDB holds no order, the state is empty) counts ``history_days``
    from the archive's first order itself: from the hour's start it would stretch the demand window by up to an
    hour (the chaos lane measured demand_per_day at 0.549x the reference: first order at :55, counted from :00)."""
    from scbda_assets.history import maintain
    from scbda_assets.history.store import history_database

    store = ArchiveStore((tmp_path / "archive").as_uri())
    folder = hour_dir("orders_fact", HOUR)
    store.create_dir(folder)
    times = [HOUR + dt.timedelta(minutes=55), HOUR + dt.timedelta(minutes=58)]
    pq.write_table(pa.table({"order_id": ["O-1", "O-2"], "order_ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                             cold.RAW_COLUMN: pa.nulls(2, pa.string())}), store.path(f"{folder}/part-b-00000.parquet"))
    history = history_database(mongo_db)
    try:
        assert maintain.earliest_order(mongo_db, history, store) == times[0]
    finally:
        mongo_db.client.drop_database(history.name)
