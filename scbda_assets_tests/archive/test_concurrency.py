"""Two archive writers at once, with real processes (SPEC §8.7): `scbda archive` + `scbda archive`, `scbda archive`
+ a Dagster materialization of the archive assets (in this process), in both orders, without and after a SIGKILLed
run. Afterwards every business id is in exactly one place (MongoDB xor the archive, once), the loser said one line
(exit 4 "busy", or a failed step naming the holder) and nothing printed a traceback."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout
from scbda_assets.archive.definitions import defs as archive_defs
from scbda_assets.archive.lease import current_holder
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.schema import SPECS_BY_COLLECTION
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.resources import build_resources
from scbda_assets.settings import Settings
from scbda_assets.timeutil import HOUR, floor_hour
from scbda_assets_tests import documents

# Writers run as real subprocesses that read the wall clock: under --shift-clock-days this module keeps the real one.
pytestmark = pytest.mark.subprocess_clock

LEASE_ENV = {"SCBDA_ARCHIVE_LEASE_SECONDS": "4", "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "2"}
EXIT_BUSY = 4


def business_ids_in_both_stores(spark, store: ArchiveStore, db, collection: str) -> tuple[Counter, Counter]:
    spec = SPECS_BY_COLLECTION[collection]
    cold: Counter = Counter()
    if store.list_files(collection, recursive=True):
        frame = spark.read.option("basePath", store.uri(collection)).parquet(store.uri(collection))
        cold = Counter(frame.select(spec.id_field).toArrow()[spec.id_field].to_pylist())
    hot = Counter(doc[spec.id_field] for doc in db[collection].find({}, {spec.id_field: 1}))
    return hot, cold


def assert_every_business_id_once(spark, store, db, original: dict[str, list[dict]]) -> dict[str, tuple[int, int]]:
    counts = {}
    for collection, docs in original.items():
        spec = SPECS_BY_COLLECTION[collection]
        hot, cold = business_ids_in_both_stores(spark, store, db, collection)
        expected = {doc[spec.id_field] for doc in docs}
        assert max(cold.values(), default=1) == 1, f"{collection}: {sum(v > 1 for v in cold.values())} twice in archive"
        assert not set(hot) & set(cold), f"{collection}: {len(set(hot) & set(cold))} ids in both stores"
        assert set(hot) | set(cold) == expected, f"{collection}: lost {len(expected - set(hot) - set(cold))}"
        counts[collection] = (len(hot), len(cold))
    return counts


@pytest.fixture
def hot_store(mongo_db):
    now = dt.datetime.now(dt.UTC)
    start = floor_hour(now) - dt.timedelta(hours=8)
    original = {
        "orders_fact": documents.orders(start, now, 6000, seed=71),
        "shipments_fact": documents.shipments(start, now, 300, seed=72, received_at=start + dt.timedelta(hours=1)),
        "inventory_fact": documents.inventory(start, now, 1200, seed=73),
    }
    documents.insert_all(mongo_db, original)
    return start, original


@pytest.fixture
def writer_env(test_env, spark_server, monkeypatch) -> dict[str, str]:
    for key, value in LEASE_ENV.items():
        monkeypatch.setenv(key, value)  # the in-process Dagster writer reads the lease timing from os.environ
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}, **test_env, **LEASE_ENV,
            "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001"}


def _cli(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scbda_assets.cli", "archive"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err, err[-2000:]
    if process.returncode == EXIT_BUSY:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "archive busy" in lines[0] and "held by" in lines[0], err
    else:
        assert process.returncode == 0, err[-2000:]
    return process.returncode, err


class DagsterWriter(threading.Thread):
    """A materialization of the archive assets over the whole range, as the UI does it (no stage tag)."""

    def __init__(self, env: dict[str, str], start: dt.datetime):
        super().__init__(daemon=True)
        self.settings = Settings.from_env(env)
        last = floor_hour(dt.datetime.now(dt.UTC)) - HOUR
        self.tags = {ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(start),
                     ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last)}
        self.result = None

    def run(self) -> None:
        # The instance lives and dies in this thread (its SQLite connections belong to it).
        try:
            with dg.DagsterInstance.ephemeral() as instance:
                result = dg.materialize(archive_defs.assets, resources=build_resources(self.settings),
                                        tags=self.tags, instance=instance, raise_on_error=False)
                self.result = self._judge(instance, result)
        except BaseException as exc:  # re-raised in the test's thread by outcome()
            self.result = exc

    @staticmethod
    def _judge(instance, result) -> str:
        """"archived", or "busy": the run succeeded with its outputs skipped, one warning line naming the holder,
        no error logged, and the busy tag for the sensor."""
        assert result.success, "a busy run is not an error"
        if result.get_asset_materialization_events():
            return "archived"
        logs = instance.all_logs(result.run_id)
        busy = [log.user_message for log in logs if "archive busy" in log.user_message]
        assert len(busy) == 1 and "held by" in busy[0] and "\n" not in busy[0], busy
        assert not [log for log in logs if log.level >= logging.ERROR], "an error was logged"
        assert instance.get_run_by_id(result.run_id).tags["scbda/archive_outcome"] == "busy"
        return "busy"

    def outcome(self) -> str:
        self.join(timeout=300)
        if isinstance(self.result, BaseException):
            raise self.result
        assert self.result in ("archived", "busy"), self.result
        return self.result


def _wait_for_lease(db, kind: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = current_holder(db)
        if holder is not None and kind in holder.owner:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} took the lease")


@pytest.mark.slow
def test_two_cli_writers_at_once(writer_env, hot_store, mongo_db, spark):
    _, original = hot_store
    first, second = _cli(writer_env), _cli(writer_env)
    codes = sorted([_finish(first)[0], _finish(second)[0]])
    print(f"cli + cli exit codes: {codes}")
    assert codes[0] == 0  # one of them archived
    counts = assert_every_business_id_once(spark, ArchiveStore(writer_env["SCBDA_ARCHIVE_URI"]), mongo_db, original)
    assert counts["orders_fact"][1] > 0


@pytest.mark.slow
@pytest.mark.parametrize("first", ["cli", "dagster"])
def test_cli_and_dagster_materialization_in_either_order(writer_env, hot_store, mongo_db, spark, first):
    start, original = hot_store
    dagster_writer = DagsterWriter(writer_env, start)
    if first == "cli":
        cli = _cli(writer_env)
        _wait_for_lease(mongo_db, "scbda archive")
        dagster_writer.start()
    else:
        dagster_writer.start()
        _wait_for_lease(mongo_db, "dagster run")
        cli = _cli(writer_env)
    code, _ = _finish(cli)
    outcome = dagster_writer.outcome()
    print(f"{first} first: cli exit {code}, dagster {outcome}")
    # The first writer archived; the second either waited it out (2 s) and found less to do, or was busy.
    assert (first == "cli" and code == 0) or (first == "dagster" and outcome == "archived")
    counts = assert_every_business_id_once(spark, ArchiveStore(writer_env["SCBDA_ARCHIVE_URI"]), mongo_db, original)
    assert counts["orders_fact"][1] > 0


@pytest.mark.slow
@pytest.mark.parametrize("second", ["cli", "dagster"])
def test_after_a_sigkilled_writer_two_writers_race_and_one_recovers(writer_env, hot_store, mongo_db, spark, second):
    start, original = hot_store
    # The two racers wait longer than the crashed writer's lease can still run (8 s > 4 s TTL), so one of them
    # always takes it over once it expires, however slowly the processes start on a loaded machine.
    writer_env = {**writer_env, "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": "8"}
    store = ArchiveStore(writer_env["SCBDA_ARCHIVE_URI"])
    crashed = _cli(writer_env)
    deadline = time.monotonic() + 120
    while not store.list_files(INCOMPLETE_DIR) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into the batch: selecting / writing Parquet
    os.killpg(crashed.pid, signal.SIGKILL)
    crashed.wait(timeout=30)
    assert store.list_files(INCOMPLETE_DIR), "the killed run left its batch incomplete"
    assert "scbda archive" in current_holder(mongo_db).owner  # its lease stays until it expires
    cli = _cli(writer_env)
    other = _cli(writer_env) if second == "cli" else DagsterWriter(writer_env, start)
    if second == "dagster":
        other.start()
    results = [_finish(cli)[0], _finish(other)[0] if second == "cli" else other.outcome()]
    assert 0 in results or "archived" in results
    print(f"after SIGKILL, cli + {second}: {results}")
    # Recovery waited for the expiry (4 s) before taking the batch over; whoever lost, nothing is incomplete.
    leftover = [_cli(writer_env)]
    assert _finish(leftover[0])[0] == 0
    assert not store.list_files(INCOMPLETE_DIR)
    counts = assert_every_business_id_once(spark, store, mongo_db, original)
    assert counts["orders_fact"][1] > 0


@pytest.mark.slow
def test_ui_materialization_and_sensor_run_at_once(writer_env, hot_store, mongo_db, spark):
    """Two Dagster runs (a UI materialization without tags, the sensor's archive_job run with its stage tag) that
    reach the archive at the same moment, e.g. from two instances or before the pool existed: the lease decides."""
    start, original = hot_store
    ui, sensor_run = DagsterWriter(writer_env, start), DagsterWriter(writer_env, start)
    sensor_run.tags = {**sensor_run.tags, "scbda/stage": "archive"}
    ui.start()
    sensor_run.start()
    outcomes = sorted([ui.outcome(), sensor_run.outcome()])
    print(f"ui + sensor run: {outcomes}")
    assert "archived" in outcomes
    counts = assert_every_business_id_once(spark, ArchiveStore(writer_env["SCBDA_ARCHIVE_URI"]), mongo_db, original)
    assert counts["orders_fact"][1] > 0
