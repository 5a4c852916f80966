"""The embedded stores keep what they acknowledged (docs/operations.md "Durability"), on real servers.

- Redis: append-only file fsynced every second, so a crash (SIGKILL, no shutdown save) keeps the ``kpi:history``
  trend; under memory pressure only keys with a TTL are evicted, shortest TTL first, and no write is refused.
- mongod: clients get write concern ``{j: true}``: an acknowledged write is in the journal.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pymongo
import pytest
import redis

from scbda_assets.contract import HISTORY_STREAM, kpi_key
from scbda_assets.services import resolve_endpoints
from scbda_assets.services.process import free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.settings import Settings


@pytest.fixture
def own_redis(tmp_path):
    """An embedded Redis of this test's own (the suite's one is shared and must not be killed)."""
    service = EmbeddedRedis(Settings.from_env({"SCBDA_HOME": str(tmp_path / "home"),
                                               "SCBDA_REDIS_PORT": str(free_port())}))
    yield service
    service.stop()


def _trend(client: redis.Redis, entries: int) -> None:
    """What every KPI run appends: one entry of headline figures on the capped stream, which has a day's TTL."""
    for minute in range(entries):
        client.xadd(HISTORY_STREAM, {"as_of": f"2026-12-04T01:{minute:02d}:00Z", "total_on_hand": str(1000 + minute)})
    client.expire(HISTORY_STREAM, 24 * 3600)


def test_a_redis_crash_keeps_the_trend(own_redis):
    running, _ = own_redis.ensure()
    client = redis.Redis.from_url(running.url)
    _trend(client, 30)
    time.sleep(1.5)  # appendfsync everysec: at most a second is at risk
    os.kill(running.pid, signal.SIGKILL)  # a crash: no shutdown save
    psutil.Process(running.pid).wait(10)
    restarted, started = own_redis.ensure()
    assert started and restarted.pid != running.pid
    client = redis.Redis.from_url(restarted.url)
    entries = client.xrange(HISTORY_STREAM)
    assert len(entries) == 30
    assert entries[-1][1][b"total_on_hand"] == b"1029"
    assert client.ttl(HISTORY_STREAM) > 23 * 3600


def test_memory_pressure_evicts_the_minute_snapshot_never_the_trend_and_refuses_no_write(own_redis):
    running, _ = own_redis.ensure()
    client = redis.Redis.from_url(running.url)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-ttl"}
    _trend(client, 200)
    # A small ceiling just above what is stored now, then ten times as much snapshot data as fits.
    client.config_set("maxmemory", client.info("memory")["used_memory"] + 1024 * 1024)
    payload = "x" * 10_000
    for run in range(1000):
        client.set(kpi_key(f"inventory_{run}"), payload, ex=180)  # a KPI snapshot: TTL, rebuilt every minute
    assert client.info("stats")["evicted_keys"] > 0
    assert client.xlen(HISTORY_STREAM) == 200
    assert client.get(kpi_key("inventory_999")) == payload.encode()  # the newest write went through


def test_mongod_clients_get_journaled_acknowledgement(base_env, mongo_server):
    """The URI every client of the embedded mongod gets (`scbda services up`, the resources) asks for j: true."""
    uri = resolve_endpoints(Settings.from_env(base_env))["SCBDA_MONGO_URI"]
    assert uri == mongo_server
    with pymongo.MongoClient(uri) as client:
        assert client.write_concern.document == {"j": True}
        collection = client["durability_probe"]["commits"]
        try:
            result = collection.insert_one({"_id": "commit"})  # the server accepts and acknowledges j: true
            assert result.acknowledged
            assert collection.find_one({"_id": "commit"}) == {"_id": "commit"}
        finally:
            client.drop_database("durability_probe")
