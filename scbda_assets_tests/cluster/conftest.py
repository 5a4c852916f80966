"""The scale-out lane's real cluster: a Spark standalone master + two workers behind the Connect server, and a
three-member MongoDB replica set, started once for the session in a temporary $SCBDA_HOME on free ports and stopped
by PID afterwards, even when tests fail.

The pipeline is driven only through its public entry points (`scbda generate|archive|kpis` as subprocesses with
SCBDA_* variables), so the lane keeps working when the archive, KPI and generator internals change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow.dataset as ds
import pymongo
import pytest

from scbda_assets.services.cluster import Cluster, ClusterPorts, replica_set_members
from scbda_assets.services.hdfs import hdfs_down
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings
from scbda_assets_tests.id_counts import id_counts

# The business id of each fact collection (what "nothing lost, nothing duplicated" is counted by).
BUSINESS_IDS = {"orders_fact": "order_id", "shipments_fact": "shipment_id", "inventory_fact": "snapshot_id"}
SCBDA = [sys.executable, "-m", "scbda_assets.cli"]
COMMAND_TIMEOUT = 180


@dataclasses.dataclass
class LiveCluster:
    settings: Settings
    ports: ClusterPorts
    endpoints: dict[str, str]
    archive_root: Path
    timings: list = dataclasses.field(default_factory=list)  # (command, seconds, exit code): the lane's figures

    def cluster(self) -> Cluster:
        return Cluster.of(self.settings, self.ports, test_commands=True)

    def env(self, database: str, app: str, **extra: str) -> dict[str, str]:
        """A subprocess environment: the cluster's endpoints, one database, a pymongo appname for failpoints."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
        env.update(self.endpoints)
        env.update(
            SCBDA_MONGO_URI=f"{self.endpoints['SCBDA_MONGO_URI']}&appname={app}",
            SCBDA_MONGO_DB=database,
            SCBDA_ARCHIVE_URI=(self.archive_root / database).as_uri(),
            SCBDA_ARCHIVE_THRESHOLD_MB="0.01",  # archive everything old enough
            SCBDA_ARCHIVE_SAFETY_MINUTES="16",
        )
        env.update(extra)
        return env

    def scbda(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(SCBDA + args, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        self.timings.append((args[0], round(time.monotonic() - started, 1), result.returncode))
        return result

    def client(self) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.endpoints["SCBDA_MONGO_URI"], serverSelectionTimeoutMS=20000, tz_aware=True)

    def primary_port(self, timeout: float = 60.0) -> int:
        """The primary's port, once the set has one (right after a step-down the election takes a moment)."""
        deadline = time.monotonic() + timeout
        primaries: list[str] = []
        while time.monotonic() < deadline:
            primaries = [m["name"] for m in replica_set_members(self.ports) if m["stateStr"] == "PRIMARY"]
            if len(primaries) == 1:
                return int(primaries[0].rsplit(":", 1)[1])
            time.sleep(0.2)
        raise AssertionError(f"expected one primary within {timeout:.0f} s, got {primaries}")


@pytest.fixture(scope="session")
def live_cluster(tmp_path_factory) -> LiveCluster:
    home = tmp_path_factory.mktemp("cluster_home")
    settings = Settings.from_env({"SCBDA_HOME": str(home), "SCBDA_REDIS_PORT": str(free_port())})
    cluster = Cluster.of(settings, test_commands=True)
    try:
        cluster.up()
        yield LiveCluster(settings, cluster.ports, cluster.endpoints(), home / "archives")
    finally:
        cluster.down()
        # The embedded redis of this home is the cluster's too here: stop it by its recorded PID as well.
        if cluster.redis is not None:
            cluster.redis.stop()
        hdfs_down(settings)  # `scbda services up --cluster` (a test of this lane runs it) starts HDFS too


def direct(port: int) -> pymongo.MongoClient:
    return pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=5000)


class StepDownDuring(threading.Thread):
    """Holds the first ``command`` of client ``app`` in flight on the primary (a failCommand failpoint that blocks
    the connection), steps the primary down while it waits, and records what happened.

    The held command then reaches a member that is no longer primary: a retryable write is retried by the driver on
    the new primary; anything else fails, and the run must fail cleanly and converge when re-run.
    """

    def __init__(self, live: LiveCluster, command: str, app: str):
        super().__init__(daemon=True)
        self.port = live.primary_port()
        self.command = command
        self.error: BaseException | None = None
        self.stepped_down = False
        with direct(self.port) as client:
            reply = client.admin.command(
                "configureFailPoint", "failCommand", mode={"times": 1},
                data={"failCommands": [command], "blockConnection": True, "blockTimeMS": 3000, "appName": app},
            )
        self.entered_before = int(reply.get("count", 0))

    def run(self) -> None:
        try:
            with direct(self.port) as client:
                client.admin.command(
                    "waitForFailPoint", "failCommand", timesEntered=self.entered_before + 1, maxTimeMS=60_000
                )
                client.admin.command("replSetStepDown", 30, secondaryCatchUpPeriodSecs=10)
                self.stepped_down = True
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=150)
        with direct(self.port) as client:
            client.admin.command("configureFailPoint", "failCommand", mode="off")
        assert self.error is None, f"stepping down during {self.command}: {self.error}"
        assert self.stepped_down, f"the primary never stepped down during {self.command}"


def hot_ids(live: LiveCluster, database: str) -> dict[str, list[str]]:
    with live.client() as client:
        db = client[database]
        return {coll: [d[key] for d in db[coll].find({}, {key: 1, "_id": 0})] for coll, key in BUSINESS_IDS.items()}


def cold_ids(live: LiveCluster, database: str) -> dict[str, list[str]]:
    """Business ids in the Parquet archive, read with pyarrow (not Spark: an independent reader)."""
    found = {}
    for coll, key in BUSINESS_IDS.items():
        folder = live.archive_root / database / coll
        if not folder.exists():
            found[coll] = []
            continue
        table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table(columns=[key])
        found[coll] = table.column(key).to_pylist()
    return found


def loss_report(live: LiveCluster, database: str, expected: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per collection: expected, hot, cold, lost (expected but in neither store), duplicated (extra copies)."""
    hot, cold = hot_ids(live, database), cold_ids(live, database)
    return id_counts(expected, hot, cold, BUSINESS_IDS)


def new_database(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr.strip()[-800:]}"
    return json.loads(result.stdout)
