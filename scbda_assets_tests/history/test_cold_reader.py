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
