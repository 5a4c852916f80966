"""A service that goes away between runs: the Dagster run fails with one clear line (the address tried), writes
nothing half-way, and the next run after the service returns carries on as if nothing happened."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pymongo
import pytest
import redis

from scbda_assets.definitions import build_definitions
from scbda_assets.generator.backfill import backfill
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.settings import Settings

AS_OF = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def private_stack(tmp_path, test_env, spark_server):
    """A mongod and a redis-server of this test alone, so stopping them disturbs no other test. Spark is the suite's
    Connect server (a process that has used Spark Connect cannot open a local session afterwards)."""
    env = {**test_env, "SCBDA_HOME": str(tmp_path / "own"), "SCBDA_MONGO_PORT": str(free_port()),
           "SCBDA_REDIS_PORT": str(free_port()), "SCBDA_SPARK_REMOTE": spark_server}
    settings = Settings.from_env(env)
    mongo, cache = EmbeddedMongo(settings), EmbeddedRedis(settings)
    mongo_url, redis_url = mongo.ensure()[0].url, cache.ensure()[0].url
    env.update(SCBDA_MONGO_URI=mongo_url, SCBDA_REDIS_URL=redis_url)
    yield env, mongo, cache
    cache.stop()
    mongo.stop()


def _failure_description(result: dg.ExecuteInProcessResult) -> str:
    """The one line every failed step of the run reports."""
    assert not result.success
    descriptions = {e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events()}
    assert len(descriptions) == 1, descriptions
    return descriptions.pop()


def _run(settings: Settings, job: str, **kwargs) -> dg.ExecuteInProcessResult:
    return build_definitions(settings).resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, **kwargs
    )


@pytest.mark.slow
def test_redis_down_fails_the_kpi_run_with_its_address_and_recovers(private_stack):
    env, mongo, cache = private_stack
    settings = Settings.from_env(env)
    # A live as-of (a past one never writes the live keys), so this test runs on the wall clock throughout.
    as_of = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    backfill(settings, minutes=20, rate=300, end=as_of, seed=5, progress=False)
    config = {"ops": {"kpis": {"config": {"as_of": as_of.isoformat()}}}}
    assert _run(settings, "kpi_job", run_config=config).success
    client = redis.Redis.from_url(env["SCBDA_REDIS_URL"])
    before = client.get("kpi:last_update")
    assert before is not None
    client.close()

    cache.stop()
    description = _failure_description(_run(settings, "kpi_job", run_config=config))
    assert description.startswith("Redis unreachable at ") and f"127.0.0.1:{settings.redis_port}" in description
    assert "\n" not in description

    cache.ensure()  # same port, same data dir: Redis returns
    later = {"ops": {"kpis": {"config": {"as_of": (as_of + dt.timedelta(seconds=30)).isoformat()}}}}
    assert _run(settings, "kpi_job", run_config=later).success
    assert redis.Redis.from_url(env["SCBDA_REDIS_URL"]).get("kpi:last_update") != before


@pytest.mark.slow
def test_mongodb_down_fails_the_generator_run_and_the_stream_resumes_without_gap(private_stack):
    env, mongo, _ = private_stack
    settings = Settings.from_env(env)
    backfill(settings, minutes=5, rate=300, end=AS_OF, seed=5, progress=False)
    with pymongo.MongoClient(env["SCBDA_MONGO_URI"], tz_aware=True) as client:
        orders_before = client[settings.mongo_db].orders_fact.count_documents({})

    mongo.stop()
    description = _failure_description(_run(settings, "generator_job"))
    assert description.startswith("MongoDB unreachable at ") and f"127.0.0.1:{settings.mongo_port}" in description
    assert "\n" not in description

    mongo.ensure()
    with pymongo.MongoClient(env["SCBDA_MONGO_URI"], tz_aware=True) as client:
        db = client[settings.mongo_db]
        assert db.orders_fact.count_documents({}) == orders_before  # nothing half-written by the failed run
        # The stream continues exactly where it stopped: the next minute, no gap, no overlap.
        summary = backfill(settings, minutes=1, rate=300, end=AS_OF + dt.timedelta(minutes=1), seed=5, progress=False)
        assert summary["window_start"] == AS_OF.isoformat() and summary["minutes"] == 1
        next_minute = {"order_ts": {"$gte": AS_OF, "$lt": AS_OF + dt.timedelta(minutes=1)}}
        assert db.orders_fact.count_documents(next_minute) > 0
        # Earlier minutes only gain their late-arriving orders, released now (never lose or repeat any).
        assert db.orders_fact.count_documents({"order_ts": {"$lt": AS_OF}}) >= orders_before
