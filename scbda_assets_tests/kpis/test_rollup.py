"""The orders minute rollup (real MongoDB): late orders, re-runs and crashes count once, malformed orders are
skipped, the window sums equal the direct aggregation (also for an as-of off the minute), coverage and pruning."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
import time

import pytest

from scbda_assets.generator.store import ORDERS_BY_INGESTION, ensure_indexes
from scbda_assets.kpis import pushdown, rollup
from scbda_assets.kpis.compute import KPI_NAMES, compute_kpis
from scbda_assets_tests.documents import T, minutes_before, order

ATTA, MILK, KHI, LHE = "SKU-STAPLE-001", "SKU-DAIRY-001", "DC-KHI", "DC-LHE"
SECOND = dt.timedelta(seconds=1)


def _late(order_id, sku, dc, order_ts, ingested_at, **kwargs) -> dict:
    return {**order(order_id, sku, dc, order_ts, **kwargs), "ingested_at": ingested_at}


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _by_pair(rows) -> dict:
    return {(row["sku_id"], row["dc_id"]): {k: v for k, v in row.items() if k not in ("sku_id", "dc_id")}
            for row in rows}


def _rows(db) -> int:
    return db[rollup.ROLLUP].count_documents({"ingest_minute": {"$exists": True}})


def _from_rollup(db, start, end) -> dict:
    return _by_pair(db[rollup.ROLLUP].aggregate(rollup.window_pipeline(start, end)))


def _direct(db, start, end) -> dict:
    return _by_pair(db.orders_fact.aggregate(pushdown.order_totals(start, end).pipeline))


def test_late_order_into_an_already_rolled_minute_is_counted_once(mongo_db):
    minute = minutes_before(10)
    mongo_db.orders_fact.insert_many([
        _late("o1", ATTA, KHI, minute + 5 * SECOND, minute + 6 * SECOND, requested=2, value=20.0),
        _late("o2", ATTA, KHI, minute + 40 * SECOND, minute + 41 * SECOND, requested=3, value=30.0),
    ])
    rollup.fold_new_orders(mongo_db, now=minute + 5 * rollup.MINUTE)  # minute sealed: watermark past it
    # Written 7 minutes after its order time, into the order minute that is already rolled up.
    mongo_db.orders_fact.insert_one(_late("late", ATTA, KHI, minute + 50 * SECOND, minute + 7 * rollup.MINUTE,
                                          requested=4, value=40.0))
    for _ in range(2):  # a second run changes nothing
        rollup.fold_new_orders(mongo_db, now=minute + 8 * rollup.MINUTE)
    rows = list(mongo_db[rollup.ROLLUP].find({"order_minute": minute}))
    assert sorted((_naive(row["ingest_minute"]), row["orders"]) for row in rows) == [
        (_naive(minute), 2), (_naive(minute + 7 * rollup.MINUTE), 1)]
    window = _from_rollup(mongo_db, minutes_before(15), T)
    assert window[(ATTA, KHI)] == {"orders": 3, "units_requested": 9, "units_fulfilled": 9, "revenue": 90.0,
                                   "lost_revenue": 0.0, "orders_in_full": 3}
    assert window == _direct(mongo_db, minutes_before(15), T)


def test_rerun_after_a_crash_mid_rollup_counts_once(mongo_db):
    mongo_db.orders_fact.insert_many([order(f"o{i}", ATTA, LHE, minutes_before(3) + i * SECOND, requested=1)
                                      for i in range(10)])
    # A crash after part of the $merge and before the watermark moved: a half-written row, no state document.
    partial = mongo_db.orders_fact.aggregate([*rollup.fold_pipeline(minutes_before(60))[:-1], {"$limit": 1}]).next()
    mongo_db[rollup.ROLLUP].insert_one({**partial, "orders": 4, "units_requested": 4})
    assert mongo_db[rollup.ROLLUP].find_one({"_id": rollup.STATE_ID}) is None
    rollup.fold_new_orders(mongo_db, now=T)
    # A crash after the watermark moved but before pruning: the next run repeats the tail, replacing rows.
    rollup.fold_new_orders(mongo_db, now=T)
    assert _from_rollup(mongo_db, minutes_before(15), T)[(ATTA, LHE)]["orders"] == 10
    assert _rows(mongo_db) == 1


def test_malformed_orders_are_skipped_by_the_rollup(mongo_db):
    ts = minutes_before(4)
    mongo_db.orders_fact.insert_many([
        order("ok", ATTA, KHI, ts, requested=2, value=10.0),
        order("bad-qty", ATTA, KHI, ts, requested="2"),
        order("bad-bool", ATTA, KHI, ts, requested=True, fulfilled=1),
        order("bad-value", ATTA, KHI, ts, value=None),
        order("bad-sku", 7, KHI, ts),
        _late("bad-ingested-string", ATTA, KHI, ts, ts.isoformat()),
        _late("bad-order-ts", ATTA, KHI, ts.isoformat(), ts),
        {**{k: v for k, v in order("no-ingested-at", ATTA, KHI, ts).items() if k != "ingested_at"}},
        {"order_id": "bad-missing", "order_ts": ts, "ingested_at": ts},
    ])
    rollup.fold_new_orders(mongo_db, now=T)
    window = _from_rollup(mongo_db, minutes_before(15), T)
    assert window == {(ATTA, KHI): {"orders": 1, "units_requested": 2, "units_fulfilled": 2, "revenue": 10.0,
                                    "lost_revenue": 0.0, "orders_in_full": 1}}
    assert window == _direct(mongo_db, minutes_before(15), T)


def test_window_sums_equal_the_direct_aggregation_also_off_the_minute(mongo_db):
    rng = random.Random(20261122)
    pairs = [(ATTA, KHI), (ATTA, LHE), (MILK, KHI), (MILK, "DC-NOPE")]
    docs = []
    for i in range(600):
        sku, dc = rng.choice(pairs)
        order_ts = T - dt.timedelta(milliseconds=rng.randint(-60_000, 20 * 60_000))
        delay = dt.timedelta(milliseconds=rng.randint(0, 2_000) if rng.random() < 0.9 else rng.randint(0, 900_000))
        requested = rng.randint(1, 9)
        docs.append(_late(f"o{i}", sku, dc, order_ts, order_ts + delay, requested=requested,
                          fulfilled=rng.randint(0, requested), value=round(rng.uniform(0, 900), 2),
                          lost_revenue=round(rng.uniform(0, 50), 2)))
    # Orders arrive in waves between folds, as from a live writer: a fold at `now` sees what was stamped before it.
    written = 0
    docs.sort(key=lambda doc: doc["ingested_at"])
    for now in (T - 9 * rollup.MINUTE, T - 4 * rollup.MINUTE, T + 20 * rollup.MINUTE):
        wave = [doc for doc in docs[written:] if doc["ingested_at"] < now]
        mongo_db.orders_fact.insert_many(wave)
        written += len(wave)
        rollup.fold_new_orders(mongo_db, now=now)
    assert written == len(docs)
    for end in (T, T - dt.timedelta(minutes=7, seconds=30, milliseconds=500), T + dt.timedelta(milliseconds=1)):
        start = end - dt.timedelta(minutes=15)
        expected = _direct(mongo_db, start, end)
        assert sum(row["orders"] for row in expected.values()) > 300
        got = _from_rollup(mongo_db, start, end)
        assert got.keys() == expected.keys(), end
        for pair, sums in expected.items():
            assert got[pair] == pytest.approx(sums), (end, pair)


def test_compute_kpis_from_the_rollup_equals_the_direct_read(kpi_db, spark):
    kpi_db.orders_fact.insert_many([
        order("o1", ATTA, KHI, minutes_before(14), requested=5, fulfilled=3, value=300.0, lost_revenue=20.0),
        order("o2", MILK, LHE, minutes_before(1), requested=2, value=50.0),
        _late("o3", ATTA, KHI, minutes_before(12), minutes_before(2), requested=1, value=10.0),
    ])
    rolled = compute_kpis(kpi_db, spark, T, now=T)
    direct = compute_kpis(kpi_db, spark, T, now=T, orders_from="facts")
    assert (rolled.orders_from, direct.orders_from) == ("rollup", "facts")
    assert _rows(kpi_db) == 3
    for name in KPI_NAMES:
        assert rolled.results[name].rows == direct.results[name].rows, name
    sindh = {row["region_id"]: row for row in rolled.results["regional_fulfillment"].rows}["PK-SINDH"]
    assert (sindh["orders"], sindh["units_requested"], sindh["revenue"]) == (2, 6, 310.0)


def test_windows_the_rollup_does_not_cover_read_the_orders(kpi_db, spark):
    long_ago = dt.datetime(2020, 1, 1, 12, 0, tzinfo=dt.UTC)
    kpi_db.orders_fact.insert_one(order("old", ATTA, KHI, long_ago - rollup.MINUTE, requested=3))
    run = compute_kpis(kpi_db, spark, long_ago, ("regional_fulfillment",), now=T)
    assert run.orders_from == "facts"
    assert {row["region_id"]: row for row in run.results["regional_fulfillment"].rows}["PK-SINDH"]["orders"] == 1


def test_old_rollup_rows_are_pruned_and_stop_covering(mongo_db):
    mongo_db.orders_fact.insert_one(order("o1", ATTA, KHI, minutes_before(5)))
    assert rollup.covers(rollup.fold_new_orders(mongo_db, now=T), minutes_before(15))
    later = T + 3 * rollup.HORIZON
    report = rollup.fold_new_orders(mongo_db, now=later)
    assert report["pruned"] == 1 and _rows(mongo_db) == 0  # no run for hours: restarted, old rows dropped
    assert not rollup.covers(report, minutes_before(15))
    assert rollup.covers(report, later - dt.timedelta(minutes=15))
    # Steady runs: rows older than the 2-hour horizon are pruned as time goes on.
    mongo_db.orders_fact.insert_one(order("o2", ATTA, KHI, later))
    for minutes in range(0, 150, 20):
        report = rollup.fold_new_orders(mongo_db, now=later + dt.timedelta(minutes=minutes + 1))
    assert report["covered_from"] > later and _rows(mongo_db) == 0


def test_dropping_the_rollup_rebuilds_it_and_never_claims_coverage_without_rows(mongo_db):
    mongo_db.orders_fact.insert_many([order("o1", ATTA, KHI, minutes_before(5)), order("o2", MILK, KHI, T)])
    rollup.fold_new_orders(mongo_db, now=T)
    mongo_db.drop_collection(rollup.ROLLUP)
    report = rollup.fold_new_orders(mongo_db, now=T + rollup.MINUTE)
    assert report["since"] == report["covered_from"] == T - dt.timedelta(hours=1)  # the hour of now − RESTART_BACK
    assert _from_rollup(mongo_db, minutes_before(15), T + rollup.MINUTE) == _direct(
        mongo_db, minutes_before(15), T + rollup.MINUTE)
    assert _rows(mongo_db) == 2


def test_fold_reads_only_unsealed_ingest_minutes_through_the_index(mongo_db):
    ensure_indexes(mongo_db)
    mongo_db.orders_fact.insert_one(order("o1", ATTA, KHI, minutes_before(25)))
    report = rollup.fold_new_orders(mongo_db, now=T)
    # Sealed by the writer's stamps (60 s before the end of the newest ingest minute), not by the KPI host's now:
    # a writer whose clock is behind never has a minute sealed before it is written (SPEC §9).
    assert report["watermark"] == minutes_before(25)
    mongo_db.orders_fact.insert_one(order("o2", ATTA, KHI, minutes_before(20)))  # stamped after it: folded
    # Ingested before the watermark (sealed minutes are never re-read): not folded. Writers stamp ingested_at
    # within SEAL_GRACE of the write, so this does not happen with the generator.
    mongo_db.orders_fact.insert_one(order("o3", ATTA, KHI, minutes_before(30)))
    rollup.fold_new_orders(mongo_db, now=T)
    assert _from_rollup(mongo_db, minutes_before(40), T)[(ATTA, KHI)]["orders"] == 2
    plan = mongo_db.command("explain", {"aggregate": "orders_fact", "pipeline": rollup.fold_pipeline(T)[:-1],
                                        "cursor": {}}, verbosity="queryPlanner")
    assert f"'indexName': '{ORDERS_BY_INGESTION}'" in str(plan)


def test_a_fold_reads_only_the_ingest_minutes_whose_documents_changed(mongo_db):
    ensure_indexes(mongo_db)
    minute = minutes_before(10)
    mongo_db.orders_fact.insert_one(_late("o1", ATTA, KHI, minute, minute + SECOND, requested=2))
    now = minute + 30 * SECOND  # the minute is unsealed (within SEAL_GRACE): the next fold counts it again
    first = rollup.fold_new_orders(mongo_db, now=now)
    assert first["folded_from"] == minute and first["documents_read"] == 1
    again = rollup.fold_new_orders(mongo_db, now=now + SECOND)
    assert again["folded_from"] is None and again["documents_read"] == 0  # nothing new: nothing read
    # A document that became visible late in the unsealed minute: that minute is folded again, and counted once.
    mongo_db.orders_fact.insert_one(_late("o2", ATTA, KHI, minute + 2 * SECOND, minute + 3 * SECOND, requested=3))
    late = rollup.fold_new_orders(mongo_db, now=now + 2 * SECOND)
    assert late["folded_from"] == minute and late["documents_read"] == 2
    # A new minute: only it is read, not the unchanged minute before it.
    mongo_db.orders_fact.insert_one(_late("o3", MILK, KHI, minute + rollup.MINUTE, minute + rollup.MINUTE,
                                          requested=4))
    newest = rollup.fold_new_orders(mongo_db, now=now + rollup.MINUTE)
    assert newest["folded_from"] == minute + rollup.MINUTE and newest["documents_read"] == 1
    window = _from_rollup(mongo_db, minutes_before(15), T)
    assert window == _direct(mongo_db, minutes_before(15), T)
    assert (window[(ATTA, KHI)]["orders"], window[(MILK, KHI)]["orders"]) == (2, 1)


def test_the_per_minute_counts_are_read_from_the_index_alone(mongo_db):
    ensure_indexes(mongo_db)
    mongo_db.orders_fact.insert_many([order(f"o{i}", ATTA, KHI, minutes_before(i % 7)) for i in range(40)])
    plan = mongo_db.command("explain", {"aggregate": "orders_fact", "cursor": {},
                                        "pipeline": rollup.ingest_counts_pipeline(minutes_before(30))},
                            verbosity="executionStats")
    text = str(plan)
    assert f"'indexName': '{ORDERS_BY_INGESTION}'" in text
    assert "'totalKeysExamined': 40" in text and "'totalDocsExamined': 0" in text


def test_a_less_complete_fold_finishing_last_does_not_undo_a_more_complete_one(mongo_db):
    """Two folds at once (a scheduled run and `scbda kpis`): the one that saw fewer orders of a minute may merge
    after the one that saw more. The rows keep the more complete sums."""
    minute = minutes_before(10)
    early = [_late(f"o{i}", ATTA, KHI, minute + i * SECOND, minute + 20 * SECOND, requested=1) for i in range(3)]
    mongo_db["orders_seen_early"].insert_many([dict(doc) for doc in early])  # what the slower fold had read
    mongo_db.orders_fact.insert_many(early + [_late("o9", ATTA, KHI, minute + 9 * SECOND, minute + 21 * SECOND,
                                                    requested=5)])
    mongo_db.orders_fact.aggregate(rollup.fold_pipeline(minute, minute))  # the complete fold merges first
    mongo_db["orders_seen_early"].aggregate(rollup.fold_pipeline(minute, minute))  # then the stale one
    window = _from_rollup(mongo_db, minutes_before(15), T)
    assert window[(ATTA, KHI)]["orders"] == 4 and window[(ATTA, KHI)]["units_requested"] == 8
    assert window == _direct(mongo_db, minutes_before(15), T)


_FOLD_LOOP = """
import datetime as dt, sys, pymongo
from scbda_assets.kpis import rollup
db = pymongo.MongoClient(sys.argv[1], tz_aware=True)[sys.argv[2]]
now = dt.datetime.fromisoformat(sys.argv[3])
rollup.fold_new_orders(db, now=now)
print("folding", flush=True)
for _ in range(int(sys.argv[4])):
    rollup.fold_new_orders(db, now=now)
"""


def test_folds_in_two_processes_while_orders_arrive_count_every_order_once(mongo_db, settings):
    """The minute schedule and `scbda kpis` folding at once, real processes, while a writer inserts orders into
    the unsealed minutes: whatever order the merges land in, the rollup ends equal to the direct aggregation."""
    ensure_indexes(mongo_db)
    rng = random.Random(20261127)
    now = T + 30 * SECOND  # every ingest minute below is unsealed at `now`: each fold re-counts them all
    docs = []
    for i in range(3000):
        order_ts = T - dt.timedelta(milliseconds=rng.randint(1, 10 * 60_000))
        ingested_at = max(order_ts, T - 50 * SECOND) + dt.timedelta(milliseconds=rng.randint(0, 40_000))
        docs.append(_late(f"o{i}", *rng.choice([(ATTA, KHI), (ATTA, LHE), (MILK, KHI)]), order_ts, ingested_at,
                          requested=rng.randint(1, 9)))
    folders = [subprocess.Popen([sys.executable, "-c", _FOLD_LOOP, settings.mongo_uri, settings.mongo_db,
                                 now.isoformat(), "60"], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert [folder.stdout.readline().strip() for folder in folders] == ["folding", "folding"]
        for wave in range(30):  # inserts interleaved with both processes' folds
            mongo_db.orders_fact.insert_many(docs[wave * 100:(wave + 1) * 100])
            time.sleep(0.02)
        assert [folder.wait(timeout=120) for folder in folders] == [0, 0]
    finally:
        for folder in folders:
            if folder.poll() is None:
                folder.kill()
    rollup.fold_new_orders(mongo_db, now=now)  # the next tick
    expected = _direct(mongo_db, minutes_before(15), T)
    assert sum(row["orders"] for row in expected.values()) == len(docs)
    assert _from_rollup(mongo_db, minutes_before(15), T) == expected
