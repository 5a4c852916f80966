"""SPEC §10: the live snapshot only moves forward. An older run finishing last writes nothing (the check and the
writes are one Lua script), publishers finishing in any order leave the newest, a future as-of is refused with one
line, and a past as-of never writes the live keys — `live: true` on the asset included."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading

import dagster as dg
from click.testing import CliRunner

from scbda_assets.cli import main
from scbda_assets.contract import HISTORY_STREAM, KPI_NAMES
from scbda_assets.kpis.compute import KpiResult
from scbda_assets.kpis.publish import publish_snapshot
from scbda_assets_tests.documents import T, snapshot

MIN = dt.timedelta(minutes=1)


def _results(as_of: dt.datetime) -> dict[str, KpiResult]:
    return {name: KpiResult(name, as_of, 15, [{"marker": as_of.isoformat(), "severity": "ok"}]) for name in KPI_NAMES}


def _publish(client, as_of: dt.datetime):
    return publish_snapshot(client, _results(as_of), {}, as_of=as_of, ttl_seconds=180, completed_at=as_of)


def _live(client) -> set[str]:
    return {json.loads(client.get(f"kpi:{name}"))["as_of"] for name in KPI_NAMES}


def test_an_older_run_finishing_last_never_overwrites_a_newer_snapshot(redis_client):
    _publish(redis_client, T)
    _publish(redis_client, T + 2 * MIN)
    late = _publish(redis_client, T + MIN)  # started before the T+2 run, finished after it
    assert _live(redis_client) == {(T + 2 * MIN).isoformat()}
    from scbda_assets.kpis.publish import live_as_of

    assert not late.ok and late.written == {} and late.live_as_of == T + 2 * MIN
    assert not _publish(redis_client, T + 2 * MIN).ok  # the same as-of again is not newer either
    history = [entry[b"as_of"].decode() for _, entry in redis_client.xrange(HISTORY_STREAM)]
    assert history == [T.isoformat(), (T + 2 * MIN).isoformat()]  # the trend never goes back
    assert live_as_of(redis_client) == T + 2 * MIN


def test_publishers_finishing_in_any_order_leave_the_newest_and_never_go_back(redis_client, settings):
    import redis as redis_lib

    order = [T + i * MIN for i in range(60)]
    random.Random(11).shuffle(order)
    seen, stop = [], threading.Event()

    def reader():
        client = redis_lib.Redis.from_url(settings.redis_url)
        while not stop.is_set():
            value = client.get("kpi:dc_utilization")
            if value:
                seen.append(json.loads(value)["as_of"])
        client.close()

    def publisher(moments):
        client = redis_lib.Redis.from_url(settings.redis_url)
        for moment in moments:
            _publish(client, moment)
        client.close()

    watcher = threading.Thread(target=reader)
    watcher.start()
    writers = [threading.Thread(target=publisher, args=(order[i::4],)) for i in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    watcher.join()
    assert _live(redis_client) == {max(order).isoformat()}
    assert seen and seen == sorted(seen), "the live snapshot went back in time"
    history = [entry[b"as_of"].decode() for _, entry in redis_client.xrange(HISTORY_STREAM)]
    assert history == sorted(history)


def test_a_future_as_of_is_refused_with_one_line_and_writes_nothing(scbda_environ, redis_client):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = CliRunner().invoke(main, ["kpis", "--as-of", future])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is in the future" in lines[0] and "expected a time up to now" in lines[0], lines
    assert redis_client.keys("*") == []


def test_live_true_with_a_past_as_of_leaves_the_live_keys(kpi_db, redis_client, spark_settings):
    from scbda_assets.kpis.assets import kpis
    from scbda_assets.resources import build_resources

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _publish(redis_client, now - MIN)  # the live snapshot
    before = {key: redis_client.get(key) for key in redis_client.keys("*") if key != HISTORY_STREAM.encode()}
    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 250, now - dt.timedelta(days=1)))
    past = {"ops": {"kpis": {"config": {"as_of": (now - dt.timedelta(days=1) + MIN).isoformat(), "live": True}}}}
    result = dg.materialize([kpis], resources=build_resources(spark_settings), run_config=past)
    assert result.success
    (mat, *_) = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["published"].value is False
    assert {key: redis_client.get(key) for key in before} == before
    assert redis_client.xlen(HISTORY_STREAM) == 1
    # A future as-of from the UI fails with the one line, and writes nothing.
    future = {"ops": {"kpis": {"config": {"as_of": (now + dt.timedelta(days=400)).isoformat()}}}}
    failed = dg.materialize([kpis], resources=build_resources(spark_settings), run_config=future,
                            raise_on_error=False)
    assert not failed.success and failed.get_asset_materialization_events() == []
    assert {key: redis_client.get(key) for key in before} == before
