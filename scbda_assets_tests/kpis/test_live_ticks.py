"""A KPI tick never reads a minute being written (data_until), a past as-of never touches the live keys, and a
Spark Connect session the server closed is reopened transparently."""

from __future__ import annotations

import datetime as dt
import json

from scbda_assets.kpis.refresh import SparkHandle, refresh_kpis_once, run_refresh, wait_for_data
from scbda_assets_tests.documents import T, minutes_before, order, snapshot


def _clock_at(db, moment):
    db.generator_state.replace_one({"_id": "simulation"}, {"as_of": moment}, upsert=True)


def test_data_until_is_the_generators_committed_clock_after_a_bounded_wait(kpi_db, redis_client, spark):
    sleeps = []
    assert wait_for_data(kpi_db, T, timeout_s=0.0, sleep=sleeps.append) == T  # no generator: T
    _clock_at(kpi_db, T - dt.timedelta(minutes=2))
    assert wait_for_data(kpi_db, T, timeout_s=0.0, sleep=sleeps.append) == T - dt.timedelta(minutes=2)
    _clock_at(kpi_db, T + dt.timedelta(seconds=5))
    assert wait_for_data(kpi_db, T, timeout_s=0.0, sleep=sleeps.append) == T
    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 80, minutes_before(16)))
    kpi_db.orders_fact.insert_many([order("o1", "SKU-STAPLE-001", "DC-KHI", minutes_before(16), requested=4),
                                    order("o2", "SKU-STAPLE-001", "DC-KHI", minutes_before(1), requested=9)])
    until = T - dt.timedelta(minutes=2)
    outcome = run_refresh(db=kpi_db, spark=spark, redis_client=redis_client, as_of=T, ttl_seconds=180,
                          clock=lambda: T, data_until=until)
    payload = json.loads(redis_client.get("kpi:regional_fulfillment"))
    assert payload["as_of"] == T.isoformat() and payload["data_until"] == until.isoformat()
    # The window is [data_until - 15 min, data_until): o1 (16 min before T) is in it, o2 (after data_until) not.
    sindh = {r["region_id"]: r for r in payload["rows"]}["PK-SINDH"]
    assert (sindh["orders"], sindh["units_requested"]) == (1, 4)
    assert outcome.run.results["inventory_level"].rows[0]["on_hand_qty"] == 80


def test_a_past_as_of_prints_every_payload_and_writes_nothing(kpi_db, redis_client, spark_settings):
    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 80, minutes_before(3)))
    redis_client.set("kpi:inventory_level", "live")
    summary = refresh_kpis_once(spark_settings, as_of=T, clock=lambda: T + dt.timedelta(days=1))
    assert summary["published"] is False and summary["redis_keys"] == []
    payloads = summary["payloads"]
    assert set(payloads) == {*(f"kpi:{n}" for n in ("inventory_level", "stockout_risk", "supplier_performance",
                                                   "dc_utilization", "regional_fulfillment")), "history:daily"}
    assert payloads["kpi:inventory_level"]["rows"][0]["on_hand_qty"] == 80
    assert payloads["kpi:inventory_level"]["as_of"] == T.isoformat()
    assert {k.decode() for k in redis_client.keys("*")} == {"kpi:inventory_level"}
    assert redis_client.get("kpi:inventory_level") == b"live"


def test_a_session_closed_by_the_server_or_stopped_is_reopened_once(kpi_db, redis_client, spark_server):
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    kpi_db.inventory_fact.insert_one(snapshot("s1", "SKU-STAPLE-001", "DC-KHI", 80, minutes_before(3)))
    handle = SparkHandle(lambda: ConnectSession.builder.remote(spark_server).create())
    try:
        handle.get().client.release_session()  # what the server's idle timeout does: the handle is gone
        outcome = run_refresh(db=kpi_db, spark=handle, redis_client=redis_client, as_of=T, ttl_seconds=180,
                              clock=lambda: T)
        assert handle.reopened == 1 and outcome.run.results["inventory_level"].rows[0]["on_hand_qty"] == 80
        handle.get().stop()  # stopped on the client side
        run_refresh(db=kpi_db, spark=handle, redis_client=redis_client, as_of=T, ttl_seconds=180, clock=lambda: T)
        assert handle.reopened == 2
    finally:
        handle.close()
