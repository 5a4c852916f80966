"""SPEC §7, one stream, one writer, with real `scbda generate` processes: two rates racing over one window, a
SIGKILL and a Ctrl-C between the fact inserts and the commit, a backfill at another rate or seed, a live claim.
After each: only one writer's documents (the business ids of a clean run, once), the stock balance between
consecutive snapshots, and no shipment in transit that the committed state does not know."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pymongo
import pytest
from click.testing import CliRunner

from scbda_assets.cli import main
from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.domain.calibration import calibrate
from scbda_assets.generator import store, stream
from scbda_assets.generator.backfill import backfill
from scbda_assets.settings import Settings
from scbda_assets_tests.generator.conftest import balance_violations

pytestmark = pytest.mark.subprocess_clock  # the writers are real processes reading the real clock

END = dt.datetime(2026, 5, 5, 12, 0, tzinfo=dt.UTC)
ID_FIELDS = {"orders_fact": "order_id", "shipments_fact": "shipment_id", "inventory_fact": "snapshot_id"}
EVENT_TIME = {"orders_fact": "order_ts", "shipments_fact": "shipment_ts", "inventory_fact": "inventory_ts"}

# Waits for a start file (both racers import everything first, then start together), then runs the CLI.
RACER = textwrap.dedent("""
    import os, sys, time
    from scbda_assets.cli import main
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.005)
    sys.argv = ["scbda", *sys.argv[2:]]
    main()
""")

# Stops itself at its second commit: batch 1 committed, batch 2 inserted only (argv[1]: KILL or INT).
INTERRUPTED = textwrap.dedent("""
    import os, signal, sys, time
    from scbda_assets.generator import store
    how = getattr(signal, "SIG" + sys.argv[1])
    calls = {"n": 0}
    commit = store.save_state
    def save_state(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), how)
            time.sleep(5)
        return commit(*args, **kwargs)
    store.save_state = save_state
    from scbda_assets.cli import main
    sys.argv = ["scbda", *sys.argv[2:]]
    main()
""")


def _generate(minutes: int, rate: float, seed: int = 7, end: dt.datetime = END) -> list[str]:
    return ["generate", "--minutes", str(minutes), "--rate", f"{rate:g}", "--end", end.isoformat(), "--seed",
            str(seed), "--no-progress"]


def _env(test_env: dict) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env,
            "PYTHONPATH": os.pathsep.join(sys.path)}


def _documents(db) -> dict[str, dict[str, tuple]]:
    """Business id → contents (without ingest stamps) per fact collection."""
    return {name: {doc[key]: tuple(sorted((k, str(v)) for k, v in doc.items() if k not in ("_id", "ingested_at")))
                   for doc in db[name].find({})} for name, key in ID_FIELDS.items()}


def _clean_run(test_env: dict, minutes: int, rate: float, seed: int = 7, end: dt.datetime = END) -> dict:
    """The same window written by one uninterrupted writer in a database of its own."""
    settings = Settings.from_env({**test_env, "SCBDA_MONGO_DB": test_env["SCBDA_MONGO_DB"] + "_clean"})
    backfill(settings, minutes=minutes, rate=rate, seed=seed, end=end, progress=False)
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    try:
        return _documents(client[settings.mongo_db])
    finally:
        client.drop_database(settings.mongo_db)
        client.close()


def ghost_shipments(db) -> set[str]:
    """Shipments in transit in MongoDB that the committed state's purchase orders do not know."""
    state = db.generator_state.find_one({"_id": "simulation"})
    known = {order["shipment_id"] for order in state["purchase_orders"]}
    return {doc["shipment_id"] for doc in db.shipments_fact.find({"status": "in_transit"})} - known


def _past_the_clock(db) -> int:
    clock = db.generator_state.find_one({"_id": "simulation"})["as_of"]
    return sum(db[name].count_documents({field: {"$gte": clock}}) for name, field in EVENT_TIME.items())


def _assert_one_writer(db, expected: dict) -> None:
    found = _documents(db)
    for name in ID_FIELDS:
        lost, extra = expected[name].keys() - found[name].keys(), found[name].keys() - expected[name].keys()
        assert not lost and not extra, f"{name}: {len(lost)} lost, {len(extra)} from another writer"
        changed = [key for key in expected[name] if expected[name][key] != found[name][key]]
        assert not changed, f"{name}: {len(changed)} documents with another writer's contents"
    # (late events of the last 15 minutes are still pending: the balance is checked where all have landed)
    clock = db.generator_state.find_one({"_id": "simulation"})["as_of"]
    assert balance_violations(db, until=clock - dt.timedelta(minutes=16)) == []
    assert ghost_shipments(db) == set()
    assert _past_the_clock(db) == 0


def test_two_generators_at_two_rates_racing_leave_one_writers_stream(test_env, mongo_db, tmp_path):
    env, go = _env(test_env), tmp_path / "go"
    racers = {rate: subprocess.Popen([sys.executable, "-c", RACER, str(go), *_generate(60, rate)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for rate in (100.0, 1000.0)}
    time.sleep(3)  # both have imported the CLI and wait for the start file
    go.touch()
    outcomes = {rate: (p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for rate, p in racers.items()}
    winners = [rate for rate, (code, _, _) in outcomes.items() if code == 0]
    assert len(winners) == 1, {rate: (code, err[-800:]) for rate, (code, _, err) in outcomes.items()}
    (winner,) = winners
    (loser,) = set(outcomes) - {winner}
    code, _, err = outcomes[loser]
    assert code in (2, 4), err[-800:]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert mongo_db.generator_state.find_one({})["rate"] == winner
    _assert_one_writer(mongo_db, _clean_run(test_env, 60, winner))
    # The dimensions are the winner's: capacities match its stock.
    assert mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})["capacity_m3"] == calibrate(winner).dc_capacity_m3[0]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["KILL", "INT"])
def test_writer_stopped_between_insert_and_commit_leaves_nothing_then_resumes(test_env, mongo_db, how):
    env = _env(test_env)
    # 1000/min: 30-minute batches; the writer stops while batch 2 (minutes 30-60 of the window) is inserted.
    stopped = subprocess.run([sys.executable, "-c", INTERRUPTED, how, *_generate(60, 1000)], env=env,
                             capture_output=True, text=True, timeout=300)
    if how == "KILL":
        assert stopped.returncode == -signal.SIGKILL, stopped.stderr[-2000:]
        assert _past_the_clock(mongo_db) > 0  # a SIGKILL leaves its batch; the next writer rolls it back
    else:  # Ctrl-C: one line, and the interrupted batch is rolled back before the process ends
        assert stopped.returncode == 130, stopped.stderr[-2000:]
        assert stopped.stderr.strip().splitlines() == ["scbda: error: interrupted: nothing past the committed "
                                                       "clock is left; run the command again to continue"]
        assert _past_the_clock(mongo_db) == 0 and ghost_shipments(mongo_db) == set()
    clock = mongo_db.generator_state.find_one({})["as_of"]
    assert clock == END - dt.timedelta(minutes=30)
    # Resumed at once (the killed writer's claim is of a process gone on this host) over a SHORTER window: what
    # the stopped batch wrote past the resumed window is gone too.
    short_end = END - dt.timedelta(minutes=15)
    resumed = subprocess.run([sys.executable, "-m", "scbda_assets.cli", *_generate(45, 1000, end=short_end)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["minutes"] == 15  # from the committed clock to the new end
    _assert_one_writer(mongo_db, _clean_run(test_env, 45, 1000, end=short_end))


def test_backfill_with_another_rate_or_seed_is_refused(scbda_environ, mongo_db):
    runner = CliRunner()
    first = runner.invoke(main, _generate(10, 90, seed=4))
    assert first.exit_code == 0, first.output
    before = {name: mongo_db[name].count_documents({}) for name in (*FACT_COLLECTIONS, "dcs_dim")}
    capacity = mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})["capacity_m3"]
    later = END + dt.timedelta(minutes=10)
    for args, named in ((_generate(10, 900, seed=4, end=later), "--rate 900"),
                        (_generate(10, 90, seed=5, end=later), "--seed 5")):
        refused = runner.invoke(main, args)
        assert refused.exit_code == 2, refused.output
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "stream's" in lines[0], lines
    assert {name: mongo_db[name].count_documents({}) for name in before} == before  # nothing written
    assert mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})["capacity_m3"] == capacity  # dimensions untouched
    # Without --rate/--seed a backfill continues the stream at its own rate and seed.
    go_on = runner.invoke(main, ["generate", "--minutes", "10", "--end", later.isoformat(), "--no-progress"])
    assert go_on.exit_code == 0, go_on.output
    summary = json.loads(go_on.stdout)
    assert summary["rate"] == 90.0 and summary["seed"] == 4 and summary["minutes"] == 10


def test_dimensions_follow_the_stream_not_the_setting(settings, mongo_db):
    import dagster as dg

    from scbda_assets.generator.assets import DIMENSION_NAMES, FACT_NAMES, REFERENCE_ASSETS
    from scbda_assets.generator.jobs import run_selection
    from scbda_assets.resources import build_resources

    backfill(settings, minutes=5, rate=90, seed=4, end=END, progress=False)  # the setting says 1500/min
    resources = build_resources(settings)
    selection = run_selection(resources["mongo"], resources["settings"])
    assert set(selection) == {dg.AssetKey(name) for name in FACT_NAMES}  # dims current: no flapping tick
    assert dg.materialize(REFERENCE_ASSETS, resources=resources).success
    assert mongo_db.dcs_dim.find_one({"dc_id": "DC-KHI"})["capacity_m3"] == calibrate(90.0).dc_capacity_m3[0]
    assert len(DIMENSION_NAMES) == 4


def test_a_live_claim_makes_a_second_writer_busy_and_an_expired_one_is_rolled_back(settings, mongo_db):
    from scbda_assets.generator import claim

    t0 = END - dt.timedelta(minutes=30)
    stream.advance(mongo_db, settings, end=t0 + dt.timedelta(minutes=5), start_if_new=t0, rate=120, seed=3)
    committed = _documents(mongo_db)
    other = claim.Claim("other-writer", 120.0, 3, "another-host", 1)
    clock = mongo_db.generator_state.find_one({})["as_of"]
    claim.acquire(mongo_db, other, as_of=clock, initial=dict, start=clock, end=clock + dt.timedelta(minutes=5))
    # The other writer wrote a ghost past the clock (a purchase order of its own) and is still alive.
    mongo_db.shipments_fact.insert_one({"shipment_id": "SHP-GHOST", "status": "in_transit", "shipment_ts": clock,
                                        "sku_id": "SKU-DAIRY-001", "dc_id": "DC-KHI", "quantity": 5})
    with pytest.raises(stream.StreamBusy, match="generator busy: .*another-host"):
        stream.advance(mongo_db, settings, end=t0 + dt.timedelta(minutes=10), start_if_new=t0, wait_s=0.3)
    assert mongo_db.shipments_fact.count_documents({"shipment_id": "SHP-GHOST"}) == 1  # a live claim is respected
    # It stops renewing: after the TTL (the server's clock) its claim is taken over and its ghost rolled back.
    mongo_db.generator_state.update_one({}, [{"$set": {"claim.expires": {"$subtract": ["$$NOW", 1000]}}}])
    result = stream.advance(mongo_db, settings, end=t0 + dt.timedelta(minutes=10), start_if_new=t0, wait_s=0.3)
    assert result.minutes == 5
    assert mongo_db.shipments_fact.count_documents({"shipment_id": "SHP-GHOST"}) == 0
    assert mongo_db.generator_state.find_one({})["claim"] is None  # released at the end of the run
    assert all(committed[name].items() <= _documents(mongo_db)[name].items() for name in ID_FIELDS)
    assert balance_violations(mongo_db, until=t0) == [] and ghost_shipments(mongo_db) == set()
    with pytest.raises(claim.ClaimLost):
        claim.renew(mongo_db, other)  # the taken-over writer stops at its next write
    assert store.load_state(mongo_db).as_of is not None
