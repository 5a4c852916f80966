"""archive_size_sensor decisions on a real MongoDB, evaluated with dg.build_sensor_context and real resources."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout
from scbda_assets.archive.jobs import archive_size_sensor
from scbda_assets.resources import MongoResource, SettingsResource
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings
from scbda_assets.timeutil import HOUR, floor_hour
from scbda_assets_tests import documents



def _now() -> dt.datetime:
    """The sensor reads the wall clock, so these tests do too, when each runs (not at import)."""
    return dt.datetime.now(dt.UTC)


def _settings(test_env, **overrides) -> Settings:
    return Settings.from_env({**test_env, **{f"SCBDA_{k.upper()}": str(v) for k, v in overrides.items()}})


def _evaluate(settings: Settings, mongo_uri: str | None = None):
    resources = {
        "mongo": MongoResource(uri=mongo_uri or settings.mongo_uri, database_name=settings.mongo_db, timeout_ms=500),
        "settings": SettingsResource.from_settings(settings),
    }
    with dg.build_sensor_context(resources=resources) as context:
        return archive_size_sensor(context)


def _fill_hours(mongo_db, hours_back: int, per_hour: int = 150):
    now = _now()
    start = floor_hour(now) - dt.timedelta(hours=hours_back)
    docs = documents.orders(start, now, per_hour * hours_back, seed=5)
    documents.insert_all(mongo_db, {"orders_fact": docs})
    return start, docs


def test_below_threshold_skips_with_the_figures(test_env, mongo_db):
    _fill_hours(mongo_db, 4)
    result = _evaluate(_settings(test_env, archive_threshold_mb=50))
    assert isinstance(result, dg.SkipReason)
    assert "not above the threshold 50.0 MB" in result.skip_message and "dataSize 0." in result.skip_message


def test_above_threshold_requests_one_range_run_for_the_oldest_hours(test_env, mongo_db):
    start, _ = _fill_hours(mongo_db, 6)
    size_mb = mongo_db.command("dbStats")["dataSize"] / 2**20
    # Threshold just below the size; low water at 50 %: about half of the data must go, oldest hours first.
    settings = _settings(test_env, archive_threshold_mb=round(size_mb * 0.95, 4), archive_low_water=0.5)
    request = _evaluate(settings)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["scbda/stage"] == "archive"
    first = layout.hour_of_partition_key(request.tags[ASSET_PARTITION_RANGE_START_TAG])
    last = layout.hour_of_partition_key(request.tags[ASSET_PARTITION_RANGE_END_TAG])
    assert first == start
    horizon = floor_hour(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=60))
    assert start < last + HOUR <= horizon
    assert last < horizon - HOUR  # not everything eligible: it stops at the low-water mark
    # Duplicate ticks: the same key, so Dagster never starts a second run for the same state.
    assert _evaluate(settings).run_key == request.run_key


def test_data_newer_than_the_safety_horizon_is_never_requested(test_env, mongo_db):
    now = _now()
    documents.insert_all(mongo_db, {"orders_fact": documents.orders(now - dt.timedelta(minutes=40), now, 300)})
    result = _evaluate(_settings(test_env, archive_threshold_mb=0.001))
    assert isinstance(result, dg.SkipReason) and "nothing is eligible" in result.skip_message


def test_in_transit_shipments_are_not_eligible(test_env, mongo_db):
    old = floor_hour(_now()) - dt.timedelta(hours=5)
    documents.insert_all(mongo_db, {"shipments_fact": documents.shipments(old, old + dt.timedelta(hours=2), 40,
                                                                   in_transit_every=1)})
    result = _evaluate(_settings(test_env, archive_threshold_mb=0.001))
    assert isinstance(result, dg.SkipReason) and "shipment in transit" in result.skip_message
    mongo_db.shipments_fact.update_one({}, {"$set": {"status": "received",
                                                     "actual_arrival_ts": old + dt.timedelta(hours=3)}})
    request = _evaluate(_settings(test_env, archive_threshold_mb=0.001))
    assert isinstance(request, dg.RunRequest)


def test_mongodb_unreachable_skips_then_recovers(test_env, mongo_db):
    _fill_hours(mongo_db, 4)
    settings = _settings(test_env, archive_threshold_mb=0.001)
    down = _evaluate(settings, mongo_uri=f"mongodb://127.0.0.1:{free_port()}")
    assert isinstance(down, dg.SkipReason) and "unreachable" in down.skip_message
    assert isinstance(_evaluate(settings), dg.RunRequest)


def test_an_incomplete_batch_is_finished_even_below_the_threshold(test_env, spark_server, mongo_db, spark):
    from scbda_assets.archive.assets import archive_assets
    from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range
    from scbda_assets.archive.storage import ArchiveStore
    from scbda_assets.resources import build_resources
    from scbda_assets_tests.archive.conftest import assert_each_once

    start, docs = _fill_hours(mongo_db, 4)
    settings = _settings(test_env, spark_remote=spark_server)  # threshold 300 MB: far above this data
    store = ArchiveStore(settings.archive_uri)

    def crash(step):
        if step == "manifest":
            raise RuntimeError("crash after the verified manifest")

    with pytest.raises(RuntimeError):
        archive_range(mongo_db, spark, store, start=start, end=start + HOUR, now=dt.datetime.now(dt.UTC),
                      safety_minutes=60, checkpoint=crash)
    batch_id = store.list_files(INCOMPLETE_DIR)[0].rsplit("/", 1)[-1]
    with dg.DagsterInstance.ephemeral() as instance:
        resources = {"mongo": MongoResource(uri=settings.mongo_uri, database_name=settings.mongo_db),
                     "settings": SettingsResource.from_settings(settings)}
        with dg.build_sensor_context(resources=resources, instance=instance) as context:
            request = archive_size_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"recover-{batch_id}-attempt0"
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == layout.partition_key(start)
    result = dg.materialize([archive_assets], resources=build_resources(settings), tags=request.tags)
    assert result.success and not store.list_files(INCOMPLETE_DIR)
    assert_each_once(spark, store, mongo_db, {"orders_fact": docs})


def test_a_recovery_that_ended_busy_is_requested_again_on_the_next_tick(test_env, mongo_db, tmp_path):
    """A recovery run that lost the lease ends SUCCESS with the busy tag: the next tick asks again (a new key), so
    archival never stops for good; a parked batch is no longer requested."""
    from scbda_assets.archive import manifest as mf
    from scbda_assets.archive import manifest_store, stuck
    from scbda_assets.archive.assets import ARCHIVE_TAGS, OUTCOME_TAG
    from scbda_assets.archive.jobs import RECOVERS_TAG
    from scbda_assets.archive.protocol import INCOMPLETE_DIR
    from scbda_assets.archive.storage import ArchiveStore

    settings = _settings(test_env)  # threshold 300 MB: only the incomplete batch asks for a run
    store = ArchiveStore(settings.archive_uri)
    start = floor_hour(_now()) - 3 * HOUR
    batch_id = layout.new_batch_id(_now(), "0badc0de")
    manifest = mf.new_manifest(batch_id, created_at=_now(), start=start, cutoff=start + HOUR,
                               collections=["orders_fact"])
    store.ensure_text(f"{INCOMPLETE_DIR}/{batch_id}", batch_id)
    manifest_store.write_manifest(store, {**manifest, "status": mf.VERIFIED}, 1)
    resources = {"mongo": MongoResource(uri=settings.mongo_uri, database_name=settings.mongo_db),
                 "settings": SettingsResource.from_settings(settings)}
    keys = []
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(3):
            with dg.build_sensor_context(resources=resources, instance=instance) as context:
                request = archive_size_sensor(context)
            assert isinstance(request, dg.RunRequest), request
            keys.append(request.run_key)
            # The requested run found the lease taken (or lost it): Dagster shows SUCCESS, tagged busy.
            instance.add_run(dg.DagsterRun(job_name="archive_job", status=dg.DagsterRunStatus.SUCCESS,
                                           tags={**ARCHIVE_TAGS, **request.tags, OUTCOME_TAG: "busy"}))
        assert keys == [f"recover-{batch_id}-attempt{n}" for n in range(3)]
        assert request.tags[RECOVERS_TAG] == batch_id
        for _ in range(stuck.PARK_AFTER):
            stuck.record_failure(mongo_db, store, batch_id, RuntimeError("poison"))
        with dg.build_sensor_context(resources=resources, instance=instance) as context:
            parked = archive_size_sensor(context)
    assert not isinstance(parked, dg.RunRequest) or RECOVERS_TAG not in parked.tags


def test_no_decision_while_an_archive_run_is_in_progress(test_env, mongo_db):
    from scbda_assets.archive.assets import ARCHIVE_TAGS

    _fill_hours(mongo_db, 6)
    settings = _settings(test_env, archive_threshold_mb=0.01)
    with dg.DagsterInstance.ephemeral() as instance:
        resources = {"mongo": MongoResource(uri=settings.mongo_uri, database_name=settings.mongo_db),
                     "settings": SettingsResource.from_settings(settings)}
        with dg.build_sensor_context(resources=resources, instance=instance) as context:
            assert isinstance(archive_size_sensor(context), dg.RunRequest)
        instance.add_run(dg.DagsterRun(job_name="archive_job", status=dg.DagsterRunStatus.STARTED, tags=ARCHIVE_TAGS))
        with dg.build_sensor_context(resources=resources, instance=instance) as context:
            result = archive_size_sensor(context)
    assert isinstance(result, dg.SkipReason) and "archive run is in progress" in result.skip_message


@pytest.mark.slow
def test_sensor_sizes_only_occupied_hours_and_absurd_dates_never_stall_it(test_env, spark_server, mongo_db, spark):
    """A document from 1970, one from 2100, one with a text date and one with a date Python cannot hold: the sensor
    sizes only the hours that hold documents, requests a run whose window (first partition) reaches back to 1970,
    and that run archives the 1970 document into event_date=1970-01-01/hour=00; the others never crash a tick."""
    from bson.datetime_ms import DatetimeMS

    from scbda_assets.archive.assets import archive_assets
    from scbda_assets.archive.schema import ORDERS
    from scbda_assets.archive.sizing import occupied_hours
    from scbda_assets.archive.storage import ArchiveStore
    from scbda_assets.resources import build_resources

    start, docs = _fill_hours(mongo_db, 3, per_hour=40)
    base = {k: v for k, v in docs[0].items() if k not in ("_id", "order_id", "order_ts")}
    epoch = {**base, "order_id": "ABSURD-1970", "order_ts": dt.datetime(1970, 1, 1, 0, 30, tzinfo=dt.UTC)}
    future = {**base, "order_id": "ABSURD-2100", "order_ts": dt.datetime(2100, 1, 1, tzinfo=dt.UTC)}
    text = {**base, "order_id": "ABSURD-TEXT", "order_ts": "yesterday"}
    unrepresentable = {**base, "order_id": "ABSURD-YEAR-MINUS-30", "order_ts": DatetimeMS(-63_000_000_000_000)}
    mongo_db.orders_fact.insert_many([epoch, future, text, unrepresentable])

    horizon = floor_hour(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=60))
    hours = occupied_hours(mongo_db.orders_fact, ORDERS, horizon)
    expected = sorted({floor_hour(d["order_ts"]) for d in docs if d["order_ts"] < horizon})
    assert hours[0] == dt.datetime(1, 1, 1, tzinfo=dt.UTC)  # the unrepresentable date, clamped: one seek
    assert hours[1:] == [dt.datetime(1970, 1, 1, tzinfo=dt.UTC), *expected]

    settings = _settings(test_env, archive_threshold_mb=0.001, spark_remote=spark_server)
    request = _evaluate(settings)
    assert isinstance(request, dg.RunRequest)
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2025-01-01-00:00"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "2025-01-01-00:00"  # one partition, not 2025..now
    result = dg.materialize([archive_assets], resources=build_resources(settings), tags=request.tags)
    assert result.success
    store = ArchiveStore(settings.archive_uri)
    assert store.list_files("orders_fact/event_date=1970-01-01/hour=00")
    assert mongo_db.orders_fact.count_documents({"order_id": "ABSURD-1970"}) == 0
    assert mongo_db.orders_fact.count_documents({"order_id": "ABSURD-2100"}) == 1  # in the future: stays hot
    # The next tick archives the ordinary hours.
    following = _evaluate(settings)
    assert isinstance(following, dg.RunRequest)
    assert following.tags[ASSET_PARTITION_RANGE_START_TAG] == layout.partition_key(expected[0])
    assert dg.materialize([archive_assets], resources=build_resources(settings), tags=following.tags).success
    frame = spark.read.option("basePath", store.uri("orders_fact")).parquet(store.uri("orders_fact"))
    archived = {row["order_id"] for row in frame.select("order_id").collect()}
    assert "ABSURD-1970" in archived and "ABSURD-2100" not in archived
    assert {d["order_id"] for d in docs if d["order_ts"] < horizon} <= archived
    # What stays (2100, the unrepresentable date) never stalls a tick: it decides again without an error.
    assert isinstance(_evaluate(settings), (dg.SkipReason, dg.RunRequest))
