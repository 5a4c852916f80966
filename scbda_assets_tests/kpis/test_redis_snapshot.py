"""The Redis snapshot (SPEC §10): one atomic MULTI/EXEC per run, TTL on every key, the capped history stream,
subset runs write only their keys, and a failed run writes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading

import pytest

from scbda_assets.kpis import compute
from scbda_assets.kpis.compute import KPI_NAMES, KpiResult, compute_kpis
from scbda_assets.contract import HISTORY_STREAM
from scbda_assets.kpis.publish import LIVE_AS_OF_KEY, publish_snapshot
from scbda_assets.kpis.refresh import refresh_kpis_once, run_refresh
from scbda_assets.errors import ServiceUnavailable
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings
from scbda_assets_tests.documents import T, minutes_before, order, snapshot

KPI_KEYS = [f"kpi:{name}" for name in KPI_NAMES]
ALL_KEYS = [*KPI_KEYS, "kpi:last_update"]


def _results(as_of: dt.datetime, marker: int) -> dict[str, KpiResult]:
    rows = {"stockout_risk": [{"severity": "critical", "marker": marker}]}
    return {name: KpiResult(name, as_of, 15, rows.get(name, [{"marker": marker}])) for name in KPI_NAMES}


def _seed_facts(db) -> None:
    db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 100, minutes_before(1)))
    db.orders_fact.insert_one(order("o1", "SKU-STAPLE-001", "DC-KHI", minutes_before(2), requested=4))


def test_refresh_writes_every_key_with_ttl_and_a_history_entry(kpi_db, redis_client, spark_settings):
    _seed_facts(kpi_db)
    summary = refresh_kpis_once(spark_settings, as_of="2026-11-22T12:00:00Z", clock=lambda: T)
    json.dumps(summary)  # JSON-able
    assert summary["as_of"] == T.isoformat() and summary["kpis"]["inventory_level"]["rows"] == 1
    assert summary["headline"]["total_on_hand"] == 100
    for key in ALL_KEYS:
        assert 0 < redis_client.ttl(key) <= spark_settings.kpi_ttl_seconds, key
    assert redis_client.ttl(HISTORY_STREAM) > 0
    payload = json.loads(redis_client.get("kpi:stockout_risk"))
    assert payload["as_of"] == T.isoformat() and payload["window_minutes"] == 15
    assert payload["alert_count"] == 1 and payload["rows"][0]["severity"] == "critical"
    assert json.loads(redis_client.get("kpi:supplier_performance"))["window_minutes"] == 30
    completed = dt.datetime.fromisoformat(redis_client.get("kpi:last_update").decode())  # completion, not as-of
    assert completed == T  # the clock the run was given
    ((_, entry),) = redis_client.xrange(HISTORY_STREAM)
    entry = {k.decode(): v.decode() for k, v in entry.items()}
    assert entry["as_of"] == T.isoformat() and entry["total_on_hand"] == "100" and entry["stockout_alerts"] == "1"
    assert entry["avg_on_time_rate"] == "" and float(entry["fill_rate"]) == 1.0


def test_key_prefix_applies_to_every_key(kpi_db, redis_client, spark_settings):
    prefixed = Settings.from_env({**spark_settings.to_env(), "SCBDA_KEY_PREFIX": "blue:"})
    refresh_kpis_once(prefixed, as_of=T, clock=lambda: T)
    keys = {key.decode() for key in redis_client.keys("*")}
    assert keys == {f"blue:{key}" for key in [*ALL_KEYS, HISTORY_STREAM, "history:daily", LIVE_AS_OF_KEY]}


def test_history_stream_is_capped(redis_client):
    for i in range(1600):
        publish_snapshot(redis_client, {}, {}, as_of=T + dt.timedelta(minutes=i), ttl_seconds=180, completed_at=T)
    assert 1440 <= redis_client.xlen(HISTORY_STREAM) < 1600


def test_subset_writes_only_its_keys(redis_client):
    results = _results(T, 1)
    publish_snapshot(redis_client, {"dc_utilization": results["dc_utilization"]}, {}, as_of=T, ttl_seconds=180,
                     completed_at=T)
    assert {key.decode() for key in redis_client.keys("*")} == {"kpi:dc_utilization", "kpi:last_update", HISTORY_STREAM,
                                                                LIVE_AS_OF_KEY}


def test_a_concurrent_reader_never_sees_a_mix_of_two_runs(redis_client, settings):
    seen, mixed, stop = [], [], threading.Event()

    def reader():
        import redis as redis_lib

        client = redis_lib.Redis.from_url(settings.redis_url)
        while not stop.is_set():
            values = client.mget(ALL_KEYS)
            if all(values):
                as_ofs = {json.loads(v)["as_of"] for v in values[:-1]}
                seen.append(as_ofs)
                if len(as_ofs) != 1:
                    mixed.append(as_ofs)
        client.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            as_of = T + dt.timedelta(minutes=i)
            publish_snapshot(redis_client, _results(as_of, i), {}, as_of=as_of, ttl_seconds=180, completed_at=as_of)
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 50 and len({frozenset(s) for s in seen}) > 5  # the reader really overlapped many runs
    assert mixed == []


def test_failed_spark_query_mid_run_writes_nothing(kpi_db, redis_client, spark, monkeypatch):
    _seed_facts(kpi_db)
    run_refresh(db=kpi_db, spark=spark, redis_client=redis_client, as_of=T - dt.timedelta(minutes=1), ttl_seconds=180,
                clock=lambda: T)
    before = {key: redis_client.get(key) for key in ALL_KEYS}
    history = redis_client.xlen(HISTORY_STREAM)
    # The fourth KPI's query fails in Spark after the MongoDB reads and the other queries succeeded.
    broken = dataclasses.replace(compute.KPIS["dc_utilization"], sql="SELECT no_such_column FROM {dcs}")
    monkeypatch.setitem(compute.KPIS, "dc_utilization", broken)
    with pytest.raises(Exception, match="no_such_column"):
        run_refresh(db=kpi_db, spark=spark, redis_client=redis_client, as_of=T, ttl_seconds=180, clock=lambda: T)
    assert {key: redis_client.get(key) for key in ALL_KEYS} == before
    assert redis_client.xlen(HISTORY_STREAM) == history


def test_unreachable_spark_fails_with_one_line_and_writes_nothing(kpi_db, redis_client, spark_settings):
    _seed_facts(kpi_db)
    redis_client.set("kpi:last_update", "previous")
    down = Settings.from_env({**spark_settings.to_env(), "SCBDA_SPARK_REMOTE": f"sc://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceUnavailable, match=r"Spark Connect unreachable at sc://127\.0\.0\.1:\d+") as info:
        refresh_kpis_once(down, as_of=T, clock=lambda: T)
    assert "\n" not in str(info.value)
    assert redis_client.keys("*") == [b"kpi:last_update"] and redis_client.get("kpi:last_update") == b"previous"


def test_unreachable_mongo_fails_with_one_line_and_writes_nothing(redis_client, spark_settings):
    down = Settings.from_env({**spark_settings.to_env(), "SCBDA_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceUnavailable, match="MongoDB unreachable at mongodb://127.0.0.1"):
        refresh_kpis_once(down, as_of=T, clock=lambda: T)
    assert redis_client.keys("*") == []


def test_unreachable_redis_fails_with_one_line(kpi_db, spark, settings):
    import redis as redis_lib

    client = redis_lib.Redis(port=free_port(), socket_connect_timeout=1)
    with pytest.raises(ServiceUnavailable, match="Redis unreachable at"):
        run_refresh(db=kpi_db, spark=spark, redis_client=client, as_of=T, ttl_seconds=180, clock=lambda: T)


def test_compute_is_consistent_with_what_is_published(kpi_db, redis_client, spark):
    _seed_facts(kpi_db)
    outcome = run_refresh(db=kpi_db, spark=spark, redis_client=redis_client, as_of=T, ttl_seconds=180, clock=lambda: T)
    fresh = compute_kpis(kpi_db, spark, T, now=T)
    for name in KPI_NAMES:
        assert json.loads(redis_client.get(f"kpi:{name}"))["rows"] == fresh.results[name].rows
    assert outcome.summary()["redis_keys"][-1] == HISTORY_STREAM
