"""A truncated archive file never stops the KPIs (SPEC §8.11): in a dirty hour (rebuilt for a late event) and in the
hour at the edge of the 7-day demand window, the file is moved to ``_quarantine/`` with its record, the KPIs are
computed from everything else, the quarantine check fails, and every other business id is still in one store."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from scbda_assets.archive import quarantine
from scbda_assets.archive.protocol import archive_range
from scbda_assets.history.cold import hour_files
from scbda_assets.kpis.compute import KPI_NAMES, compute_kpis
from scbda_assets.quality.archive_quarantine import quarantine_result
from scbda_assets.timeutil import floor_hour
from scbda_assets_tests.documents import T, order
from scbda_assets_tests.history import scenario

AS_OF = T + dt.timedelta(minutes=23, seconds=40)  # the demand window starts inside a minute: its edge is read raw


def _archived_order_ids(store) -> list[str]:
    ids = []
    for path in store.list_files("orders_fact", recursive=True):
        if path.endswith(".parquet"):
            ids += pq.read_table(store.path(path), columns=["order_id"])["order_id"].to_pylist()
    return ids


def _truncate(store, path: str) -> set[str]:
    """Cut the file to half its bytes (a torn write); returns the order ids it held."""
    held = set(pq.read_table(store.path(path), columns=["order_id"])["order_id"].to_pylist())
    data = open(store.path(path), "rb").read()
    with open(store.path(path), "wb") as handle:
        handle.write(data[: len(data) // 2])
    return held


@pytest.mark.slow
def test_truncated_files_in_a_dirty_hour_and_at_the_window_edge_are_quarantined(chain_db, archive_store, spark):
    facts = scenario.documents(days=8, seed=29, as_of=AS_OF)
    scenario.insert(chain_db, facts)
    archive_range(chain_db, spark, archive_store, start=AS_OF - dt.timedelta(days=9),
                  end=floor_hour(AS_OF) - dt.timedelta(hours=2), now=AS_OF, safety_minutes=60)
    all_ids = {o["order_id"] for o in facts["orders_fact"]}
    assert len(_archived_order_ids(archive_store)) > 0.9 * len(all_ids)
    compute_kpis(chain_db, spark, AS_OF, now=AS_OF, archive=archive_store)  # the history layer is built

    dirty_hour = floor_hour(AS_OF - dt.timedelta(days=3))
    edge_hour = floor_hour(AS_OF - dt.timedelta(days=7))
    bad = [hour_files(archive_store, "orders_fact", hour)[0] for hour in (dirty_hour, edge_hour)]
    lost_with_files = set().union(*(_truncate(archive_store, path) for path in bad))
    late = order("LATE-1", "SKU-STAPLE-001", "DC-KHI", dirty_hour + dt.timedelta(minutes=7), requested=3)
    late["ingested_at"] = AS_OF + dt.timedelta(minutes=1)
    chain_db.orders_fact.insert_one(dict(late))

    run = compute_kpis(chain_db, spark, AS_OF, now=AS_OF + dt.timedelta(minutes=2), archive=archive_store)
    assert set(run.results) == set(KPI_NAMES) and run.results["stockout_risk"].rows

    entries = quarantine.quarantined(archive_store)
    assert sorted(e["original"] for e in entries) == sorted(bad)
    assert all(e["reason"] and e["bytes"] > 0 and e["quarantined_at"] for e in entries)
    assert not any(archive_store.exists(path) for path in bad)
    assert all(archive_store.exists(e["quarantined_as"]) for e in entries)
    hours = quarantine.flagged_hours(archive_store)["orders_fact"]
    assert hours == sorted(f"{h:%Y-%m-%dT%H:%M:%SZ}" for h in (edge_hour, dirty_hour))
    assert quarantine.summary(archive_store)["files"] == 2

    check = quarantine_result(archive_store, "orders_fact")
    assert check.passed is False and check.metadata["quarantined_files"].value == 2
    assert quarantine_result(archive_store, "shipments_fact").passed is True

    # Nothing else lost: every other id is in exactly one readable place (the archive or MongoDB).
    readable = _archived_order_ids(archive_store)
    hot = {doc["order_id"] for doc in chain_db.orders_fact.find({}, {"order_id": 1})} - {"LATE-1"}
    assert len(readable) == len(set(readable)) and not set(readable) & hot
    assert set(readable) | hot == all_ids - lost_with_files and lost_with_files and not lost_with_files & hot
    # The next run reads the same (no file left to fail on) and quarantines nothing more.
    compute_kpis(chain_db, spark, AS_OF, now=AS_OF + dt.timedelta(minutes=3), archive=archive_store)
    assert len(quarantine.quarantined(archive_store)) == 2
