"""First start (SPEC §4): an empty store is seeded with SCBDA_SEED_DAYS of history ending now, exactly once."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from scbda_assets.first_start import StoreContents, plan_seed, seed_if_empty
from scbda_assets.settings import ConfigError, Settings

NOW = dt.datetime(2026, 5, 5, 10, 0, 40, tzinfo=dt.UTC)
EMPTY = StoreContents(generator_clock=None, fact_documents=0, archived_batches=0)


def test_an_empty_store_is_seeded_with_the_configured_days_ending_at_the_minute():
    plan = plan_seed(EMPTY, 2, NOW)
    assert plan.minutes == 2880
    assert plan.end == dt.datetime(2026, 5, 5, 10, 0, tzinfo=dt.UTC)
    assert plan.start == dt.datetime(2026, 5, 3, 10, 0, tzinfo=dt.UTC)
    assert "2 days" in plan.reason and "SCBDA_SEED_DAYS=2" in plan.reason


@pytest.mark.parametrize("contents", [
    dataclasses.replace(EMPTY, generator_clock=dt.datetime(2026, 5, 4, tzinfo=dt.UTC)),
    dataclasses.replace(EMPTY, fact_documents=1),
    dataclasses.replace(EMPTY, archived_batches=1),  # everything hot was archived: still not empty
])
def test_a_store_that_holds_anything_is_never_seeded(contents):
    plan = plan_seed(contents, 2, NOW)
    assert plan.minutes == 0 and "already holds data" in plan.reason


def test_seed_days_zero_seeds_nothing_and_fractions_are_minutes():
    assert plan_seed(EMPTY, 0, NOW).minutes == 0
    assert plan_seed(EMPTY, 0.01, NOW).minutes == 14  # 14.4 minutes, whole minutes only
    assert "14 minutes" in plan_seed(EMPTY, 0.01, NOW).reason


def test_seed_days_setting_is_validated():
    assert Settings.from_env({}).seed_days == 2
    assert Settings.from_env({"SCBDA_SEED_DAYS": "0.5"}).seed_days == 0.5
    for bad in ("-1", "two", "400"):
        with pytest.raises(ConfigError, match="SCBDA_SEED_DAYS=.*expected days 0-365"):
            Settings.from_env({"SCBDA_SEED_DAYS": bad})


def test_first_start_seeds_an_empty_store_once_then_never_again(test_env, mongo_db):
    settings = Settings.from_env({**test_env, "SCBDA_SEED_DAYS": str(10 / 1440), "SCBDA_EVENTS_PER_MINUTE": "90"})
    lines: list[str] = []

    first = seed_if_empty(settings, now=NOW, progress=False, echo=lines.append)
    assert first["seeded"] is True and first["minutes"] == 10
    assert first["window_end"] == "2026-05-05T10:00:00+00:00"
    assert mongo_db.orders_fact.count_documents({}) == first["events"]["orders_fact"] > 0
    assert mongo_db.inventory_fact.count_documents({}) == first["events"]["inventory_fact"] > 0
    clock = mongo_db.generator_state.find_one({"_id": "simulation"})["as_of"]
    assert clock == dt.datetime(2026, 5, 5, 10, 0, tzinfo=dt.UTC)  # the live stream continues from here
    assert any("seeding 10 minutes" in line for line in lines) and any("seeded" in line for line in lines)

    counts = {name: mongo_db[name].count_documents({}) for name in ("orders_fact", "inventory_fact")}
    second = seed_if_empty(settings, now=NOW + dt.timedelta(hours=1), progress=False, echo=lines.append)
    assert second["seeded"] is False and "already holds data" in second["reason"]
    assert {name: mongo_db[name].count_documents({}) for name in counts} == counts
    assert mongo_db.generator_state.find_one({"_id": "simulation"})["as_of"] == clock


def test_seed_days_zero_leaves_an_empty_store_empty(test_env, mongo_db):
    settings = Settings.from_env({**test_env, "SCBDA_SEED_DAYS": "0"})
    result = seed_if_empty(settings, now=NOW, progress=False, echo=lambda line: None)
    assert result["seeded"] is False and "SCBDA_SEED_DAYS=0" in result["reason"]
    assert mongo_db.generator_state.find_one({}) is None and mongo_db.orders_fact.count_documents({}) == 0
