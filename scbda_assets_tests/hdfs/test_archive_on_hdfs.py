"""The archive on a real HDFS (NameNode + DataNode, each its own JVM), driven through the `scbda` CLI.

Each scenario counts business ids across MongoDB and the Parquet archive on HDFS against a fault-free control run
of the same seeded generation: lost 0, duplicated 0.
* `scbda services up --hdfs` / `status` / a killed DataNode restarted by `up` again / `down` by PID;
* archival with three SIGKILLs of `scbda archive`, then a re-run; two overlapping archive runs;
* the history layer and the five KPIs over the hdfs:// archive equal the same computation over file://; `scbda sql`;
* faults: the DataNode killed while Spark writes Parquet, and while a manifest is written, then restarted; the
  NameNode restarted mid-archive (safe mode on start); the NameNode in safe mode and unreachable (one line, exit 3).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest

from scbda_assets.services.hdfs import HdfsDataNode, HdfsNameNode, hadoop_classpath, hdfs_down
from scbda_assets.services.java import java_home
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings
from scbda_assets_tests.hdfs.conftest import (
    COMMAND_TIMEOUT,
    SCBDA,
    NameNodeLogWatcher,
    archive_until_converged,
    assert_every_business_id_once,
    generate,
    loss_report,
    new_database,
    sigkill,
    summary,
)

pytestmark = [pytest.mark.hdfs, pytest.mark.slow, pytest.mark.subprocess_clock]

SPARK_PARQUET = r"/_temporary/.*\.parquet$"  # a file Spark's Hadoop client is writing (its task attempt folder)
MANIFEST = r"/_manifests/(?!_incomplete).*\.json"


def _report(name: str, codes: list[int], report: dict) -> None:
    orders = report["orders_fact"]
    print(f"FAULT {name} | exit codes {codes} | orders expected {orders['expected']} / hot {orders['hot']} / "
          f"cold {orders['cold']} | lost {sum(r['lost'] for r in report.values())} | "
          f"duplicated {sum(r['duplicated'] for r in report.values())}")


def test_services_up_prints_the_hdfs_uri_status_shows_datanodes_and_up_restarts_a_killed_datanode(live_hdfs):
    up = live_hdfs.up()
    assert up.returncode == 0, up.stderr
    exported = dict(line.split("=", 1) for line in up.stdout.splitlines())
    assert exported["SCBDA_ARCHIVE_URI"] == live_hdfs.archive_uri
    assert exported["SCBDA_ARCHIVE_URI"].startswith("hdfs://127.0.0.1:")
    status = live_hdfs.scbda(["services", "status"], live_hdfs.services_env())
    assert "live datanodes 1," in status.stdout and "capacity " in status.stdout, status.stdout
    namenode_pid = live_hdfs.namenode().status().pid
    killed = live_hdfs.datanode().status().pid
    sigkill(killed)
    assert live_hdfs.datanode().status() is None
    again = live_hdfs.up()
    assert again.returncode == 0, again.stderr
    restarted = live_hdfs.datanode().status()
    assert restarted is not None and restarted.pid != killed
    assert live_hdfs.namenode().status().pid == namenode_pid  # what was running is reused
    store = live_hdfs.store(new_database("probe"))
    store.write_new_text("probe/probe.txt", "written after the restart")
    assert store.read_text("probe/probe.txt") == "written after the restart"


def test_archive_with_three_sigkills_then_a_rerun_keeps_every_id_once(live_hdfs, lane_end, expected):
    database = new_database("sigkill")
    generate(live_hdfs, database, lane_end)
    env = live_hdfs.env(database)
    rng = np.random.default_rng(20261204)
    killed = 0
    for delay in rng.uniform(0.0, 2.0, size=3):
        # The kill lands a seeded moment after Spark started writing the batch's Parquet on HDFS.
        process = live_hdfs.start(["archive"], env)
        watcher = NameNodeLogWatcher(live_hdfs, f"{database}.*{SPARK_PARQUET}", lambda: None)
        watcher.start()
        while process.poll() is None and watcher.is_alive():
            time.sleep(0.02)
        time.sleep(float(delay))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed += 1
        process.wait(timeout=60)
        watcher.stopped.set()
        report = loss_report(live_hdfs, database, expected)
        assert all(r["lost"] == 0 for r in report.values()), report  # nothing lost at any moment
    assert killed == 3, "a run ended before its kill: the archive is faster than the delays"
    codes = archive_until_converged(live_hdfs, database, None)
    report = loss_report(live_hdfs, database, expected)
    _report("three SIGKILLs of scbda archive, then a re-run", [-9, -9, -9, *codes], report)
    assert_every_business_id_once(report)


def test_two_overlapping_archive_runs_keep_every_id_once(live_hdfs, lane_end, expected):
    database = new_database("overlap")
    generate(live_hdfs, database, lane_end)
    env = live_hdfs.env(database)
    first = live_hdfs.start(["archive"], env)
    time.sleep(1.0)
    second = live_hdfs.start(["archive"], env)
    outcomes = [(p.wait(timeout=COMMAND_TIMEOUT), p.communicate()) for p in (first, second)]
    codes = [code for code, _ in outcomes]
    for code, (_, stderr) in outcomes:
        assert code in (0, 4), stderr  # archived, or busy (the other holds the lease) with one line
        assert "Traceback" not in stderr
    assert 0 in codes
    codes += archive_until_converged(live_hdfs, database, None)
    report = loss_report(live_hdfs, database, expected)
    _report("two overlapping scbda archive runs", codes, report)
    assert_every_business_id_once(report)


_VOLATILE = {"computed_at", "completed_at", "generated_at", "seconds", "mongo_seconds", "spark_seconds", "elapsed_ms",
             "duration_ms", "published_at", "archive_uri"}


def _comparable(value):
    """A payload without what differs between two runs of the same computation (timings, when it ran)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in sorted(value.items()) if k not in _VOLATILE}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else str(value)
    return value


def test_history_kpis_and_sql_over_hdfs_equal_the_same_over_file(live_hdfs, lane_end, expected):
    on_hdfs, on_file = new_database("kpi_hdfs"), new_database("kpi_file")
    for database, local in ((on_hdfs, False), (on_file, True)):
        generate(live_hdfs, database, lane_end)
        summary(live_hdfs.scbda(["archive"], live_hdfs.env(database, local=local)))
        assert_every_business_id_once(loss_report(live_hdfs, database, expected, local=local))
    as_of = (lane_end - dt.timedelta(minutes=10)).isoformat()  # in the past: the payloads are printed, not published
    payloads = {}
    for database, local in ((on_hdfs, False), (on_file, True)):
        result = summary(live_hdfs.scbda(["kpis", "--as-of", as_of], live_hdfs.env(database, local=local)))
        payloads[local] = _comparable(result["payloads"])
    assert len([k for k in payloads[False] if k.startswith("kpi:")]) == 5
    assert payloads[False] == payloads[True]
    queries = ["SELECT count(*) AS n, count(DISTINCT order_id) AS ids FROM orders", "SELECT * FROM orders_hourly"]
    for query in queries:
        # As sets of rows: the history's row order is not part of its contract.
        rows = {local: sorted(json.dumps(_comparable(row), sort_keys=True) for row in summary(
                    live_hdfs.scbda(["sql", "--json", query], live_hdfs.env(db, local=local))))
                for db, local in ((on_hdfs, False), (on_file, True))}
        assert rows[False] and rows[False] == rows[True], query
    [row] = summary(live_hdfs.scbda(["sql", "--json", queries[0]], live_hdfs.env(on_hdfs)))
    assert row["n"] == row["ids"] == len(expected["orders_fact"])  # hot + cold, each order once


def _datanode_fault(live_hdfs, expected, lane_end, name: str, pattern: str, after: str | None) -> None:
    database = new_database(name)
    generate(live_hdfs, database, lane_end)
    datanode = live_hdfs.datanode()
    pid = datanode.status().pid
    watcher = NameNodeLogWatcher(live_hdfs, f"{database}.*{pattern}", lambda: sigkill(pid),
                                 after=f"{database}.*{after}" if after else None)
    watcher.start()
    faulted = live_hdfs.scbda(["archive"], live_hdfs.env(database))
    fired_on = watcher.finish()
    print(f"DataNode SIGKILLed when the NameNode allocated a block for {fired_on}; archive exit {faulted.returncode}: "
          f"{faulted.stderr.strip()[-300:]}")
    assert datanode.status() is None
    assert live_hdfs.up().returncode == 0  # restarts the DataNode
    codes = archive_until_converged(live_hdfs, database, faulted)
    report = loss_report(live_hdfs, database, expected)
    _report(f"DataNode killed during a {name.replace('_', ' ')}, then restarted", codes, report)
    assert_every_business_id_once(report)


def test_datanode_killed_during_a_parquet_write_then_restarted(live_hdfs, lane_end, expected):
    _datanode_fault(live_hdfs, expected, lane_end, "parquet_write", SPARK_PARQUET, None)


def test_datanode_killed_during_a_manifest_write_then_restarted(live_hdfs, lane_end, expected):
    # The manifest written after the batch's Parquet (the one MongoDB's delete depends on).
    _datanode_fault(live_hdfs, expected, lane_end, "manifest_write", MANIFEST, SPARK_PARQUET)


def test_namenode_restarted_mid_archive_safe_mode_on_start(live_hdfs, lane_end, expected):
    database = new_database("nn_restart")
    generate(live_hdfs, database, lane_end)
    namenode = live_hdfs.namenode()
    pid = namenode.status().pid
    watcher = NameNodeLogWatcher(live_hdfs, f"{database}.*{SPARK_PARQUET}", lambda: sigkill(pid))
    watcher.start()
    faulted = live_hdfs.scbda(["archive"], live_hdfs.env(database))
    watcher.finish()
    namenode.ensure()  # back on the same port; in safe mode until the DataNode reports its blocks
    during_safe_mode = live_hdfs.scbda(["archive"], live_hdfs.env(database))
    print(f"NameNode killed mid-write: archive exit {faulted.returncode}: {faulted.stderr.strip()[-300:]}; right "
          f"after its restart: exit {during_safe_mode.returncode}: {during_safe_mode.stderr.strip()[-300:]}")
    assert faulted.returncode == 3 and "Traceback" not in faulted.stderr, faulted.stderr[-1500:]
    live_hdfs.wait_writable()
    codes = [faulted.returncode] + archive_until_converged(live_hdfs, database, during_safe_mode)
    report = loss_report(live_hdfs, database, expected)
    _report("NameNode killed mid-archive, restarted (safe mode on start)", codes, report)
    assert_every_business_id_once(report)


def _dfsadmin(live_hdfs, *args: str) -> str:
    namenode = live_hdfs.archive_uri.rsplit("/scbda/", 1)[0]
    result = subprocess.run(
        [f"{java_home()}/bin/java", "-cp", hadoop_classpath(), "org.apache.hadoop.hdfs.tools.DFSAdmin",
         "-fs", namenode, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    return result.stdout


def test_namenode_in_safe_mode_or_unreachable_is_one_line_exit_3_and_changes_nothing(live_hdfs, lane_end, expected):
    database = new_database("safemode")
    generate(live_hdfs, database, lane_end)
    _dfsadmin(live_hdfs, "-safemode", "enter")
    try:
        refused = live_hdfs.scbda(["archive"], live_hdfs.env(database))
    finally:
        _dfsadmin(live_hdfs, "-safemode", "leave")
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.count("\n") == 1 and "safe mode" in refused.stderr, refused.stderr
    report = loss_report(live_hdfs, database, expected)
    assert report["orders_fact"]["cold"] == 0 and report["orders_fact"]["hot"] == len(expected["orders_fact"])
    nowhere = f"hdfs://127.0.0.1:{free_port()}/scbda/archive"
    unreachable = live_hdfs.scbda(["archive"], live_hdfs.env(database, SCBDA_ARCHIVE_URI=nowhere))
    assert unreachable.returncode == 3, unreachable.stderr
    assert unreachable.stderr.count("\n") == 1 and "unreachable" in unreachable.stderr, unreachable.stderr
    codes = archive_until_converged(live_hdfs, database, None)
    _report("NameNode in safe mode, then unreachable, then a re-run", [3, 3, *codes],
            report := loss_report(live_hdfs, database, expected))
    assert_every_business_id_once(report)


def test_services_down_stops_namenode_and_datanode_by_pid(tmp_path, live_hdfs):
    env = {**live_hdfs.services_env(), "SCBDA_HOME": str(tmp_path)}
    up = subprocess.run(SCBDA + ["services", "up", "--hdfs"], env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("SCBDA_")})
    pids = [HdfsNameNode(settings).status().pid, HdfsDataNode(settings).status().pid]
    down = subprocess.run(SCBDA + ["services", "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert "hdfs-datanode" in down.stdout and "hdfs-namenode" in down.stdout, down.stdout
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert hdfs_down(settings) == []
