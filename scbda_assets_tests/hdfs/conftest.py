"""The hdfs lane's real HDFS: a NameNode and a DataNode (each its own JVM, from Hadoop's jars that `make hadoop`
fetches), started once for the session in a temporary $SCBDA_HOME on free ports and stopped by PID afterwards, even
when tests fail. MongoDB, Redis and the Spark Connect server are the suite's own.

The pipeline is driven through its public entry points only (`scbda generate|archive|kpis|sql|services` as
subprocesses), and ids are counted in MongoDB and, with pyarrow over hdfs-native, in the Parquet archive: the lane
keeps working when the archive protocol's internals change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pyarrow.dataset as ds
import pymongo
import pytest

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.services.hdfs import HdfsDataNode, HdfsNameNode, hadoop_classpath, hdfs_down, hdfs_up, wait_writable
from scbda_assets.services.process import ServiceError
from scbda_assets.settings import Settings
from scbda_assets.timeutil import floor_minute
from scbda_assets_tests.id_counts import id_counts

BUSINESS_IDS = {"orders_fact": "order_id", "shipments_fact": "shipment_id", "inventory_fact": "snapshot_id"}
SCBDA = [sys.executable, "-m", "scbda_assets.cli"]
COMMAND_TIMEOUT = 420  # a loaded 2-core machine (load 30 seen) takes minutes for an archive run
MINUTES, RATE, SEED = 120, 40, 23  # ~5k orders; the older hour and more are archived


@dataclasses.dataclass
class LiveHdfs:
    settings: Settings
    base_env: dict[str, str]  # the suite's MongoDB, Redis and Spark, and this lane's $SCBDA_HOME
    archive_uri: str  # hdfs://127.0.0.1:<port>/scbda/archive
    local_root: Path  # where the file:// twin archives go
    timings: list = dataclasses.field(default_factory=list)  # (command, seconds, exit code)

    def env(self, database: str, *, local: bool = False, **extra: str) -> dict[str, str]:
        root = (self.local_root / database).as_uri() if local else f"{self.archive_uri}/{database}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
        env.update(self.base_env)
        env.update(
            SCBDA_MONGO_DB=database,
            SCBDA_ARCHIVE_URI=root,
            SCBDA_ARCHIVE_THRESHOLD_MB="0.01",  # archive everything old enough
            SCBDA_ARCHIVE_SAFETY_MINUTES="16",
            # A killed run's lease expires after 3 s; the next run waits up to 5 s for it, then recovers.
            SCBDA_ARCHIVE_LEASE_SECONDS="3",
            SCBDA_ARCHIVE_LEASE_WAIT_SECONDS="5",
        )
        env.update(extra)
        return env

    def scbda(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(SCBDA + args, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        self.timings.append((args[0], round(time.monotonic() - started, 1), result.returncode))
        return result

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(SCBDA + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def store(self, database: str, *, local: bool = False) -> ArchiveStore:
        return ArchiveStore(self.env(database, local=local)["SCBDA_ARCHIVE_URI"])

    def client(self) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.base_env["SCBDA_MONGO_URI"], serverSelectionTimeoutMS=20000, tz_aware=True)

    def namenode(self) -> HdfsNameNode:
        return HdfsNameNode(self.settings)

    def datanode(self) -> HdfsDataNode:
        return HdfsDataNode(self.settings)

    def services_env(self) -> dict[str, str]:
        """For `scbda services …` of this lane's home: the suite's servers are explicit, so only HDFS is ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
        return {**env, **self.base_env}

    def up(self) -> subprocess.CompletedProcess:
        return self.scbda(["services", "up", "--hdfs"], self.services_env())

    def wait_writable(self, timeout: float = 120.0) -> None:
        wait_writable(self.settings, timeout)


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:
        psutil.Process(pid).wait(10)
    except psutil.Error:
        pass


@pytest.fixture(scope="session")
def live_hdfs(tmp_path_factory, mongo_server, redis_server, spark_server) -> LiveHdfs:
    try:
        hadoop_classpath()
    except ServiceError as exc:  # skips locally with the install hint; under CI=true ci_rules turns it into a failure
        pytest.skip(str(exc))
    home = tmp_path_factory.mktemp("hdfs_home")
    base_env = {"SCBDA_HOME": str(home), "SCBDA_MONGO_URI": mongo_server, "SCBDA_REDIS_URL": redis_server,
                "SCBDA_SPARK_REMOTE": spark_server}
    settings = Settings.from_env(base_env)
    try:
        uri, _ = hdfs_up(settings)
        yield LiveHdfs(settings, base_env, uri, home / "local_archives")
    finally:
        hdfs_down(settings)


@pytest.fixture(scope="module")
def lane_end() -> dt.datetime:
    return floor_minute(dt.datetime.now(dt.UTC))


def generate(live: LiveHdfs, database: str, end: dt.datetime) -> dict:
    args = ["generate", "--minutes", str(MINUTES), "--rate", str(RATE), "--end", end.isoformat(), "--seed", str(SEED),
            "--no-progress"]
    return summary(live.scbda(args, live.env(database)))


@pytest.fixture(scope="module")
def expected(live_hdfs, lane_end) -> dict[str, list[str]]:
    """The ids a fault-free run writes: the same seeded generation into a control database."""
    control = new_database("control")
    generate(live_hdfs, control, lane_end)
    return hot_ids(live_hdfs, control)


def new_database(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr.strip()[-800:]}"
    return json.loads(result.stdout)


def hot_ids(live: LiveHdfs, database: str) -> dict[str, list[str]]:
    with live.client() as client:
        db = client[database]
        return {coll: [d[key] for d in db[coll].find({}, {key: 1, "_id": 0})] for coll, key in BUSINESS_IDS.items()}


def cold_ids(store: ArchiveStore) -> dict[str, list[str]]:
    """Business ids in the Parquet archive, read with pyarrow through the store's filesystem (not Spark)."""
    found = {}
    for coll, key in BUSINESS_IDS.items():
        if not store.exists(coll):
            found[coll] = []
            continue
        dataset = ds.dataset(store.path(coll), filesystem=store.fs, format="parquet", partitioning="hive")
        found[coll] = dataset.to_table(columns=[key]).column(key).to_pylist()
    return found


def loss_report(live: LiveHdfs, database: str, expected: dict[str, list[str]], *, local: bool = False) -> dict:
    """Per collection: expected, hot, cold, lost (in neither store), unexpected, duplicated (extra copies)."""
    hot, cold = hot_ids(live, database), cold_ids(live.store(database, local=local))
    return id_counts(expected, hot, cold, BUSINESS_IDS)


def assert_every_business_id_once(report: dict) -> None:
    for coll, counts in report.items():
        assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["unexpected"] == 0, (coll, counts)
        assert counts["hot"] + counts["cold"] == counts["expected"], (coll, counts)
    assert report["orders_fact"]["expected"] > 1000
    assert report["orders_fact"]["cold"] > 0 and report["orders_fact"]["hot"] > 0, report


def archive_until_converged(live: LiveHdfs, database: str, first: subprocess.CompletedProcess | None,
                            attempts: int = 4) -> list[int]:
    """Re-run `scbda archive` until it exits 0 with no incomplete batch; the exit codes, ``first`` included. A
    failed run must fail cleanly: one line, no traceback."""
    codes = [] if first is None else [first.returncode]
    result = first
    for _ in range(attempts + 1):
        if result is not None:
            assert "Traceback" not in result.stderr, result.stderr[-1500:]
            if result.returncode == 0 and not json.loads(result.stdout).get("incomplete_batches"):
                return codes
        result = live.scbda(["archive"], live.env(database))
        codes.append(result.returncode)
    raise AssertionError(f"archive did not converge after {codes}: {result.stderr.strip()[-800:]}")


class NameNodeLogWatcher(threading.Thread):
    """Calls ``action`` once, the moment the NameNode allocates a block for a path matching ``pattern`` (its
    `BLOCK* allocate … for <path>` log line), optionally only after a path matching ``after`` got one: a fault
    placed by what the writer is writing, not by a guessed delay."""

    ALLOCATE = re.compile(r"BLOCK\* allocate \S+ replicas=\S* for (\S+)")

    def __init__(self, live: LiveHdfs, pattern: str, action, *, after: str | None = None,
                 timeout: float = COMMAND_TIMEOUT):
        super().__init__(daemon=True)
        self.log = live.namenode().log_file
        self.offset = self.log.stat().st_size
        self.pattern, self.after = re.compile(pattern), re.compile(after) if after else None
        self.action, self.timeout = action, timeout
        self.fired_on: str | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        seen_after = self.after is None
        deadline = time.monotonic() + self.timeout
        with open(self.log, errors="replace") as log:
            log.seek(self.offset)
            while not self.stopped.is_set() and time.monotonic() < deadline:
                line = log.readline()
                if not line:
                    time.sleep(0.005)
                    continue
                match = self.ALLOCATE.search(line)
                if not match:
                    continue
                path = match.group(1)
                if not seen_after:
                    seen_after = bool(self.after.search(path))
                    continue
                if self.pattern.search(path):
                    self.fired_on = path
                    self.action()
                    return

    def finish(self) -> str:
        self.stopped.set()
        self.join(timeout=30)
        assert self.fired_on, f"the NameNode never allocated a block for {self.pattern.pattern}"
        return self.fired_on
