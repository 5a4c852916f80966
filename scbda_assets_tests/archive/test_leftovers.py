"""Stray ``.tmp`` files of crashed small-file writes are removed by the retention sensor once older than MIN_AGE;
fresh ones (a write in progress), published files and the hour folders are left alone (real files)."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from scbda_assets.archive.leftovers import MIN_AGE, clean_temporary_files, stray_temporary_files
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.run_retention import dagster_run_retention_sensor
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.resources import SettingsResource


def _write(store: ArchiveStore, relative: str, age: dt.timedelta) -> None:
    store.create_dir(relative.rsplit("/", 1)[0])
    with open(store.path(relative), "w") as handle:
        handle.write("{")
    stamp = (dt.datetime.now(dt.UTC) - age).timestamp()
    os.utime(store.path(relative), (stamp, stamp))


def test_stray_temporary_files_are_cleaned_by_the_retention_sensor(settings, tmp_path):
    store = ArchiveStore(settings.archive_uri)
    old = MIN_AGE + dt.timedelta(minutes=5)
    stray = ["_manifests/20261120T100000Z-0000000a.1.json.tmp", f"{INCOMPLETE_DIR}/20261120T100000Z-0000000a.tmp",
             "_quarantine/orders_fact/event_date=2026-11-20/hour=10/part-x.parquet.why.json.tmp"]
    kept = ["_manifests/20261120T110000Z-0000000b.json.tmp",  # a write in progress
            "_manifests/20261120T100000Z-0000000a.json",
            "orders_fact/event_date=2026-11-20/hour=10/part-y.parquet.tmp"]  # hour folders are never swept
    for path in stray:
        _write(store, path, old)
    _write(store, kept[0], dt.timedelta(seconds=5))
    for path in kept[1:]:
        _write(store, path, old)
    now = dt.datetime.now(dt.UTC)
    assert stray_temporary_files(store, now=now) == sorted(stray)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance, dg.build_sensor_context(
            instance=instance, resources={"settings": SettingsResource.from_settings(settings)}) as context:
        result = dagster_run_retention_sensor(context)
    assert "3 stray temporary archive file(s) removed" in result.skip_message
    assert not any(store.exists(path) for path in stray) and all(store.exists(path) for path in kept)
    assert clean_temporary_files(store, now=now) == 0
