"""Time from one clock (SPEC §9): the generator's clock 5 minutes behind the KPI host's. The rollup and the history
layer seal ingest minutes by the writer's own stamps, so every order is counted once in both."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from scbda_assets.generator import stream
from scbda_assets.history import maintain
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.kpis import rollup
from scbda_assets.timeutil import floor_hour, floor_minute

pytestmark = pytest.mark.subprocess_clock  # generator stamps and the KPI host's clock are both the real one here

MIN = dt.timedelta(minutes=1)
SKEW = dt.timedelta(minutes=5)


def _generator_clock():
    return dt.datetime.now(dt.UTC) - SKEW  # the generator's host is 5 minutes behind


def _settings(settings):
    return dataclasses.replace(settings, events_per_minute=300.0, seed=5, late_event_fraction=0.0)


def _orders(db, start: dt.datetime, end: dt.datetime) -> int:
    return db.orders_fact.count_documents({"order_ts": {"$gte": start, "$lt": end}})


def _rolled(db, start: dt.datetime, end: dt.datetime) -> int:
    return sum(row["orders"] for row in db[rollup.ROLLUP].aggregate(rollup.window_pipeline(start, end)))


def test_a_generator_clock_behind_still_has_every_order_folded_once(settings, mongo_db):
    config = _settings(settings)
    now = floor_minute(dt.datetime.now(dt.UTC))
    stream.advance(mongo_db, config, end=now - 10 * MIN, start_if_new=now - 20 * MIN, now=_generator_clock)
    rollup.fold_new_orders(mongo_db, now=dt.datetime.now(dt.UTC))  # the KPI host's clock
    stream.advance(mongo_db, config, end=now - MIN, start_if_new=now, now=_generator_clock)  # written after it
    rollup.fold_new_orders(mongo_db, now=dt.datetime.now(dt.UTC) + 2 * dt.timedelta(seconds=1))
    start = now - 16 * MIN
    assert _orders(mongo_db, start, now - MIN) > 1000
    assert _rolled(mongo_db, start, now - MIN) == _orders(mongo_db, start, now - MIN)


def test_a_generator_clock_behind_still_has_every_order_in_the_history_layer(settings, mongo_db):
    config = _settings(settings)
    hour = floor_hour(dt.datetime.now(dt.UTC)) - 2 * dt.timedelta(hours=1)
    history = history_database(mongo_db)
    try:
        stream.advance(mongo_db, config, end=hour + 30 * MIN, start_if_new=hour, now=_generator_clock)
        maintain.refresh(mongo_db, None, now=dt.datetime.now(dt.UTC))  # the hour is built from its first half
        stream.advance(mongo_db, config, end=hour + 60 * MIN, start_if_new=hour, now=_generator_clock)
        maintain.refresh(mongo_db, None, now=dt.datetime.now(dt.UTC))  # the second half was ingested after it
        stored = sum(row["orders"] for row in history[ORDERS_HOURLY].find({"hour": hour}))
        assert stored == _orders(mongo_db, hour, hour + 60 * MIN) > 1000
    finally:
        mongo_db.client.drop_database(history.name)
