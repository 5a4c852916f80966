"""`scbda generate`: fast backfill through the CLI, JSON summary on stdout, one-line errors."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from scbda_assets.cli import main
from scbda_assets.domain import demand
from scbda_assets.domain.calibration import calibrate
from scbda_assets_tests.generator.conftest import balance_violations


def test_generate_writes_history_and_prints_summary(scbda_environ, mongo_db):
    runner = CliRunner()
    end = "2026-05-05T10:00:30Z"  # not on a minute: the window ends at 10:00
    result = runner.invoke(main, ["generate", "--minutes", "12", "--rate", "90", "--end", end, "--seed", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["window_start"] == "2026-05-05T09:48:00+00:00"
    assert summary["window_end"] == "2026-05-05T10:00:00+00:00"
    assert summary["minutes"] == 12 and summary["rate"] == 90.0 and summary["seed"] == 4
    for name, count in summary["events"].items():
        assert mongo_db[name].count_documents({}) == count, name
    assert summary["events"]["inventory_fact"] == 12 * demand.N_PAIRS
    assert summary["total_events"] == sum(summary["events"].values())
    assert summary["seconds"] > 0 and summary["events_per_second"] > 0
    assert mongo_db.orders_fact.count_documents({"order_ts": {"$lt": dt.datetime(2026, 5, 5, 9, 48)}}) == 0
    # The dimensions match the simulated rate (KPIs divide by these capacities).
    assert summary["dimensions_written"] is True
    assert mongo_db.dcs_dim.find_one({"dc_id": "DC-MUL"})["capacity_m3"] == calibrate(90.0).dc_capacity_m3[4]

    # Continuing: the next window starts where the stored clock is; nothing is written twice.
    again = runner.invoke(main, ["generate", "--minutes", "12", "--rate", "90", "--end", end, "--seed", "4",
                                 "--no-progress"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["dimensions_written"] is False  # already current
    assert json.loads(again.stdout)["minutes"] == 0 and json.loads(again.stdout)["total_events"] == 0
    more = runner.invoke(main, ["generate", "--minutes", "3", "--rate", "90", "--end", "2026-05-05T10:03:00Z",
                                "--seed", "4", "--no-progress"])
    assert json.loads(more.stdout)["window_start"] == "2026-05-05T10:00:00+00:00"
    assert mongo_db.inventory_fact.count_documents({}) == 15 * demand.N_PAIRS
    assert balance_violations(mongo_db, until=dt.datetime(2026, 5, 5, 9, 55, tzinfo=dt.UTC)) == []


def test_window_after_a_gap_jumps_the_clock(scbda_environ, mongo_db):
    runner = CliRunner()
    runner.invoke(main, ["generate", "--minutes", "2", "--rate", "30", "--end", "2026-05-05T10:00Z", "--no-progress"])
    result = runner.invoke(main, ["generate", "--minutes", "2", "--rate", "30", "--end", "2026-05-05T11:00Z",
                                  "--no-progress"])
    summary = json.loads(result.stdout)
    assert summary["window_start"] == "2026-05-05T10:58:00+00:00" and summary["skipped_minutes"] == 58
    assert mongo_db.inventory_fact.count_documents({}) == 4 * demand.N_PAIRS


def test_future_end_is_one_line_and_writes_nothing(scbda_environ, mongo_db):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = CliRunner().invoke(main, ["generate", "--minutes", "5", "--end", future])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--end" in lines[0] and "future" in lines[0]
    assert "orders_fact" not in mongo_db.list_collection_names()


def test_unparsable_end_is_rejected(scbda_environ, mongo_db):
    result = CliRunner().invoke(main, ["generate", "--minutes", "5", "--end", "yesterday"])
    assert result.exit_code == 2
    assert "'yesterday' is not a time" in result.stderr and "Traceback" not in result.stderr
    assert "orders_fact" not in mongo_db.list_collection_names()


def test_unreachable_mongo_is_one_line(scbda_environ, monkeypatch):
    monkeypatch.setenv("SCBDA_MONGO_URI", "mongodb://127.0.0.1:1/")
    result = CliRunner().invoke(main, ["generate", "--minutes", "1", "--no-progress"])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MongoDB unreachable at mongodb://127.0.0.1:1/" in lines[0]


def test_malformed_state_is_one_line(scbda_environ, mongo_db):
    runner = CliRunner()
    runner.invoke(main, ["generate", "--minutes", "1", "--rate", "30", "--end", "2026-05-05T10:00Z", "--no-progress"])
    mongo_db.generator_state.update_one({}, {"$set": {"on_hand": "corrupt"}})
    result = runner.invoke(main, ["generate", "--minutes", "1", "--rate", "30", "--end", "2026-05-05T10:05Z"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "generator_state is malformed" in lines[0]
    assert mongo_db.inventory_fact.count_documents({}) == 50  # nothing more was written
