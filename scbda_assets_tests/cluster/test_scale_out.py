"""The pipeline on a Spark standalone cluster and a MongoDB replica set, with failures injected mid-run.

Scenarios (each counts business ids across MongoDB and the Parquet archive against a fault-free control run of the
same seeded generation: lost 0, duplicated 0):
* the primary steps down while the generator's insert is in flight (a retryable write: the driver retries it);
* the primary steps down while archival's delete is in flight (delete_many is not retryable: the run fails, the
  re-run recovers the batch);
* a Spark worker is killed (SIGKILL) while the archive's Spark job writes;
* the KPIs (live window and the hot + cold history) on the cluster, identical before and after archival;
* the Spark master's /json and the driver's executors show the work ran on executors of both workers.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import math
import os
import signal
import subprocess
import time

import pytest
import redis

from scbda_assets.services.cluster import WORKERS, driver_executors, master_json, wait_for_executors, worker_json
from scbda_assets.timeutil import floor_minute
from scbda_assets_tests.cluster.conftest import (
    SCBDA,
    StepDownDuring,
    hot_ids,
    loss_report,
    new_database,
    summary,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.subprocess_clock]

MINUTES, RATE, SEED = 120, 60, 11  # ~8k orders and 6k snapshots; at least one whole hour is old enough to archive
FAULT_REPORTS: dict[str, dict] = {}


def _generate(live, database: str, end: dt.datetime, app: str) -> dict:
    args = ["generate", "--minutes", str(MINUTES), "--rate", str(RATE), "--end", end.isoformat(), "--seed", str(SEED),
            "--no-progress"]
    return summary(live.scbda(args, live.env(database, app)))


@pytest.fixture(scope="module")
def lane_end() -> dt.datetime:
    """The end of every scenario's generated window (one wall-clock reading, so one control run serves all)."""
    return floor_minute(dt.datetime.now(dt.UTC))


@pytest.fixture(scope="module")
def expected(live_cluster, lane_end) -> dict[str, list[str]]:
    """The ids a fault-free run writes: the same seeded generation into a control database."""
    control = new_database("control")
    _generate(live_cluster, control, lane_end, "scbda-control")
    return hot_ids(live_cluster, control)


def _archive_until_converged(live, database: str, first: subprocess.CompletedProcess, attempts: int = 3) -> list[int]:
    """Re-run `scbda archive` until it exits 0 with no incomplete batch; the exit codes, first run included."""
    codes = [first.returncode]
    if first.returncode != 0:  # failing is allowed, but cleanly: one line, no traceback (SPEC §4)
        assert "Traceback" not in first.stderr, first.stderr[-1500:]
    result = first
    for _ in range(attempts):
        if result.returncode == 0 and not json.loads(result.stdout).get("incomplete_batches"):
            return codes
        result = live.scbda(["archive"], live.env(database, "scbda-archive"))
        codes.append(result.returncode)
    raise AssertionError(f"archive did not converge after {codes}: {result.stderr.strip()[-800:]}")


def _assert_nothing_lost(report: dict, *, archived: bool) -> None:
    for coll, counts in report.items():
        assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["unexpected"] == 0, (coll, counts)
        assert counts["hot"] + counts["cold"] == counts["expected"], (coll, counts)
    assert report["orders_fact"]["expected"] > 1000
    if archived:
        assert report["orders_fact"]["cold"] > 0 and report["orders_fact"]["hot"] > 0, report


def test_generator_insert_survives_primary_stepdown(live_cluster, lane_end, expected):
    end = lane_end
    database = new_database("gen_stepdown")
    fault = StepDownDuring(live_cluster, "insert", app="scbda-generate")
    fault.start()
    result = live_cluster.scbda(
        ["generate", "--minutes", str(MINUTES), "--rate", str(RATE), "--end", end.isoformat(), "--seed", str(SEED),
         "--no-progress"],
        live_cluster.env(database, "scbda-generate"),
    )
    fault.finish()
    codes = [result.returncode]
    if result.returncode != 0:  # a clean failure is allowed; the re-run continues the stream from its clock
        assert "Traceback" not in result.stderr, result.stderr[-800:]
        codes.append(live_cluster.scbda(
            ["generate", "--minutes", str(MINUTES), "--rate", str(RATE), "--end", end.isoformat(), "--seed",
             str(SEED), "--no-progress"], live_cluster.env(database, "scbda-generate")).returncode)
    assert codes[-1] == 0, codes
    report = loss_report(live_cluster, database, expected)
    FAULT_REPORTS["primary steps down during a generator insert"] = {"exit_codes": codes, **report}
    _assert_nothing_lost(report, archived=False)


def test_archive_delete_survives_primary_stepdown_and_kpis_ignore_archival(live_cluster, lane_end, expected):
    end = lane_end
    database = new_database("archive_stepdown")
    _generate(live_cluster, database, end, "scbda-generate")
    kpis_before = _kpi_payloads(live_cluster, database, end)

    fault = StepDownDuring(live_cluster, "delete", app="scbda-archive")
    fault.start()
    first = live_cluster.scbda(["archive"], live_cluster.env(database, "scbda-archive"))
    fault.finish()
    codes = _archive_until_converged(live_cluster, database, first)
    report = loss_report(live_cluster, database, expected)
    FAULT_REPORTS["primary steps down during archival's delete"] = {"exit_codes": codes, **report}
    _assert_nothing_lost(report, archived=True)

    # The KPIs over hot + cold: archiving the hours changes no number (SPEC §9a), here on executors in other JVMs.
    kpis_after = _kpi_payloads(live_cluster, database, end)
    assert _differences(kpis_before, kpis_after) == []
    # An independent count: the regional KPI's orders in the live window equal MongoDB's count of that window.
    with live_cluster.client() as client:
        in_window = client[database]["orders_fact"].count_documents(
            {"order_ts": {"$gte": end - dt.timedelta(minutes=15), "$lt": end}}
        )
    assert in_window > 0
    assert sum(row["orders"] for row in kpis_after["regional_fulfillment"]) == in_window


def test_archive_write_survives_a_killed_spark_worker(live_cluster, lane_end, expected):
    end = lane_end
    database = new_database("worker_kill")
    _generate(live_cluster, database, end, "scbda-generate")
    victim = live_cluster.cluster().workers[WORKERS - 1]
    victim_pid = victim.status().pid

    archive = subprocess.Popen(SCBDA + ["archive"], env=live_cluster.env(database, "scbda-archive"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Spark's job output folder appears in the batch's staging area when the write job starts.
    spark_output = str(live_cluster.archive_root / database / "_staging" / "**" / "_temporary")  # any attempt
    killed = False
    deadline = time.monotonic() + 150
    while archive.poll() is None and time.monotonic() < deadline:
        if glob.glob(spark_output, recursive=True):
            os.kill(victim_pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    stdout, stderr = archive.communicate(timeout=180)
    assert killed, f"the archive's Spark write was never seen running (exit {archive.returncode}): {stderr[-500:]}"
    first = subprocess.CompletedProcess(archive.args, archive.returncode, stdout, stderr)
    codes = _archive_until_converged(live_cluster, database, first)
    report = loss_report(live_cluster, database, expected)
    FAULT_REPORTS["Spark worker SIGKILLed during the archive write"] = {"exit_codes": codes, **report}
    _assert_nothing_lost(report, archived=True)

    # The worker comes back (by the same `up` path), and the driver gets an executor on it again.
    live_cluster.cluster().up()
    wait_for_executors(live_cluster.ports, WORKERS)
    result = live_cluster.scbda(["kpis", "--as-of", end.isoformat()], live_cluster.env(database, "scbda-kpis"))
    summary(result)


def test_work_ran_on_executors_of_both_workers(live_cluster):
    master = master_json(live_cluster.ports)
    alive = [w for w in master["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == WORKERS and all(w["coresused"] == 1 for w in alive), master["workers"]
    [app] = master["activeapps"]
    assert app["name"] == "Spark Connect server" and app["cores"] == WORKERS
    tasks = {str(e["id"]): e["totalTasks"] for e in driver_executors(live_cluster.ports) if e["id"] != "driver"}
    for index in range(WORKERS):
        worker = worker_json(live_cluster.ports, index)
        executors = [str(e["id"]) for e in worker["executors"] + worker["finishedexecutors"] if e["appid"] == app["id"]]
        ran = sum(tasks.get(e, 0) for e in executors)
        assert ran > 0, f"worker {index} ({worker['id']}) ran no task: executors {executors}, tasks {tasks}"
    FAULT_REPORTS["tasks per executor"] = tasks
    FAULT_REPORTS["command timings (command, s, exit)"] = live_cluster.timings
    print(json.dumps(FAULT_REPORTS, indent=1))


def _differences(before: dict[str, list], after: dict[str, list]) -> list[tuple]:
    """(kpi, row, field, before, after) for every value that differs; floats equal within 1e-9 relative."""
    found = []
    for name in sorted(set(before) | set(after)):
        rows_before, rows_after = before.get(name, []), after.get(name, [])
        if len(rows_before) != len(rows_after):
            found.append((name, "rows", len(rows_before), len(rows_after)))
            continue
        for index, (old, new) in enumerate(zip(rows_before, rows_after)):
            for field in sorted(set(old) | set(new)):
                a, b = old.get(field), new.get(field)
                if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    continue
                if a != b:
                    found.append((name, index, field, a, b))
    return found


def _kpi_payloads(live, database: str, as_of: dt.datetime) -> dict[str, list]:
    """`scbda kpis --as-of T`, then the rows of each KPI it wrote to Redis (or printed: the live snapshot only moves
    forward, so a second run at the same T publishes nothing and prints its payloads)."""
    result = summary(live.scbda(["kpis", "--as-of", as_of.isoformat()], live.env(database, "scbda-kpis")))
    client = redis.Redis.from_url(live.endpoints["SCBDA_REDIS_URL"])
    payloads = {}
    for name in result["kpis"]:
        if not result["published"]:
            payloads[name] = result["payloads"][f"kpi:{name}"]["rows"]
            continue
        [key] = [k for k in result["redis_keys"] if name in k]
        payloads[name] = json.loads(client.get(key))["rows"]
    client.close()
    assert len(payloads) == 5 and all(payloads.values()), payloads
    return payloads


def test_cli_up_reuses_the_cluster_and_status_shows_workers_and_members(live_cluster):
    """`scbda services up --cluster` on a running cluster starts nothing and prints shell-evaluable settings;
    `status` shows the master's live workers and the replica set's members."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
    env.update(SCBDA_HOME=str(live_cluster.settings.home), SCBDA_REDIS_URL=live_cluster.endpoints["SCBDA_REDIS_URL"])
    up = subprocess.run(SCBDA + ["services", "up", "--cluster"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    evaluated = subprocess.run(["bash", "-c", f"set -a; {up.stdout}\nenv"], capture_output=True, text=True, env={})
    exported = dict(line.split("=", 1) for line in evaluated.stdout.splitlines() if line.startswith("SCBDA_"))
    assert exported["SCBDA_MONGO_URI"] == live_cluster.endpoints["SCBDA_MONGO_URI"]
    assert "w=majority" in exported["SCBDA_MONGO_URI"] and "replicaSet=scbda-rs" in exported["SCBDA_MONGO_URI"]
    assert exported["SCBDA_SPARK_REMOTE"] == live_cluster.endpoints["SCBDA_SPARK_REMOTE"]
    status = subprocess.run(SCBDA + ["services", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert sum(1 for line in lines if line.strip().startswith("worker ") and " ALIVE " in line) == WORKERS
    members = [line.split()[2] for line in lines if line.strip().startswith("mongo ")]
    assert sorted(members) == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert all("running pid=" in line for line in lines if line.startswith("cluster-"))
