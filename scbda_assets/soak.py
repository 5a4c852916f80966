"""`scbda soak` / `make soak`: the whole pipeline for N minutes, then a report.

It runs exactly what a user runs (`scbda run`: embedded services, `dagster dev` with the minute schedules and the
size sensor, the dashboard) in a fresh state folder, with the generator at the chosen rate and a low archive
threshold, after backfilling enough history that archival has eligible hours from the start. While it runs it
samples KPI staleness, MongoDB size, archived volume and the RSS of every process; at the end it reports failed
runs, the longest KPI staleness, and whether every generated id is in exactly one place (MongoDB or the archive).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pymongo
import redis
from pymongoarrow.api import Schema, find_arrow_all

from scbda_assets.contract import SPECS
from scbda_assets.services import services_down, services_up
from scbda_assets.launcher import isolated_run_environment
from scbda_assets.services.process import port_open
from scbda_assets.settings import Settings
from scbda_assets.timeutil import parse_iso

ID_FIELDS = {spec.collection: spec.id_field for spec in SPECS}  # fact collection -> business id


@dataclasses.dataclass
class Sample:
    at: str
    kpi_staleness_s: float | None
    mongo_data_mb: float
    archived_mb: float
    rss_mb: dict[str, float]


def _process_tree_rss(root_pid: int, service_pids: dict[str, int]) -> dict[str, float]:
    rss: dict[str, float] = {}
    procs = []
    try:
        procs = [psutil.Process(root_pid), *psutil.Process(root_pid).children(recursive=True)]
    except psutil.Error:
        pass
    procs += [psutil.Process(pid) for pid in service_pids.values() if psutil.pid_exists(pid)]
    for proc in procs:
        try:
            name = _label(proc, service_pids)
            rss[name] = rss.get(name, 0.0) + proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return {k: round(v, 1) for k, v in sorted(rss.items())}


def _label(proc: psutil.Process, service_pids: dict[str, int]) -> str:
    for name, pid in service_pids.items():
        if proc.pid == pid:
            return name
    cmd = " ".join(proc.cmdline())
    labels = (
        ("dagster-webserver", "dagster-webserver"),
        ("dagster._daemon", "dagster-daemon"),
        ("dagster-daemon", "dagster-daemon"),
        ("dagster code-server", "dagster code-server"),
        ("dagster api grpc", "dagster api grpc"),
        # The code server starts each run in a multiprocessing child (DefaultRunLauncher over gRPC).
        ("multiprocessing", "dagster run workers"),
        ("dagster api execute", "dagster run workers"),
        ("watch_orphans", "dagster run workers"),  # and their compute-log helpers (`tail`)
        ("streamlit", "streamlit"),
        ("dagster dev", "dagster dev"),
        ("scbda_assets.cli run", "scbda_assets.cli run"),
    )
    return next((label for marker, label in labels if marker in cmd), proc.name())


def _archived_bytes(settings: Settings) -> int:
    root = Path(settings.archive_uri.removeprefix("file://"))
    return sum(f.stat().st_size for f in root.rglob("*.parquet")) if root.exists() else 0


def _kpi_staleness(client: redis.Redis, settings: Settings) -> float | None:
    raw = client.get(settings.redis_key("kpi:last_update"))
    if not raw:
        return None
    updated = parse_iso(raw.decode())
    return (dt.datetime.now(dt.UTC) - updated).total_seconds()


_IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")


def _runs_in_flight(dagster_home: Path) -> int:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        statuses = [DagsterRunStatus[name] for name in _IN_FLIGHT]
        return len(instance.get_runs(filters=RunsFilter(statuses=statuses)))
    finally:
        instance.dispose()


def _stop_when_idle(run: subprocess.Popen, dagster_home: Path, patience_s: float = 90.0) -> float:
    """SIGTERM `scbda run` at a moment no Dagster run is in flight (minute runs leave gaps), waiting at most
    ``patience_s``. Returns the time of the stop signal."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline and _runs_in_flight(dagster_home):
        time.sleep(0.5)
    stopped_at = time.time()
    run.send_signal(signal.SIGTERM)
    run.wait(180)
    return stopped_at


def _runs_summary(dagster_home: Path, stopped_at: float) -> dict:
    """Runs by status; failures split into real ones and runs cut short by the soak's own stop signal."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        runs = instance.get_runs()
        by_status: dict[str, int] = {}
        for run in runs:
            by_status[run.status.value] = by_status.get(run.status.value, 0) + 1
        failed, interrupted = [], []
        for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE])):
            entry = {"run_id": record.dagster_run.run_id, "job": record.dagster_run.job_name}
            ended = record.end_time or record.update_timestamp.timestamp()
            (interrupted if ended >= stopped_at - 1 else failed).append(entry)
        return {"runs": len(runs), "by_status": by_status, "failed": failed, "interrupted_by_stop": interrupted}
    finally:
        instance.dispose()


def _written_by_runs(dagster_home: Path) -> dict[str, int]:
    """Documents the generator runs wrote, per fact collection (each materialization's dagster/row_count)."""
    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        written = {}
        for collection in ID_FIELDS:
            written[collection], cursor, more = 0, None, True
            while more:  # the event log hands out at most 1000 records a call
                page = instance.fetch_materializations(AssetKey(collection), limit=1000, cursor=cursor)
                written[collection] += sum(
                    int(record.asset_materialization.metadata["dagster/row_count"].value)
                    for record in page.records
                    if "dagster/row_count" in record.asset_materialization.metadata
                )
                cursor, more = page.cursor, page.has_more
        return written
    finally:
        instance.dispose()


def _ids_in_archive(settings: Settings, collection: str, id_field: str) -> pa.Array:
    root = Path(settings.archive_uri.removeprefix("file://")) / collection
    if not root.exists():
        return pa.array([], pa.string())
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    return dataset.to_table(columns=[id_field]).column(id_field).combine_chunks().drop_null()


def _ids_in_mongodb(db, collection: str, id_field: str) -> pa.Array:
    table = find_arrow_all(db[collection], {}, schema=Schema({id_field: pa.string()}),
                           projection={id_field: 1, "_id": 0})
    return table.column(id_field).combine_chunks().drop_null()


def loss_report(settings: Settings, generated: dict[str, int]) -> dict:
    """Every generated id is in exactly one place: MongoDB or the archive (none lost, none duplicated)."""
    report = {}
    with pymongo.MongoClient(settings.mongo_uri) as client:
        db = client[settings.mongo_db]
        for collection, id_field in ID_FIELDS.items():
            hot = pc.unique(_ids_in_mongodb(db, collection, id_field))
            cold_all = _ids_in_archive(settings, collection, id_field)
            cold = pc.unique(cold_all)
            in_both = int(pc.sum(pc.is_in(hot, value_set=cold)).as_py() or 0) if len(hot) and len(cold) else 0
            report[collection] = {
                "generated": generated.get(collection),
                "in_mongodb": len(hot),
                "in_archive": len(cold),
                "duplicated_in_archive": len(cold_all) - len(cold),
                "in_both": in_both,
                "lost": None if generated.get(collection) is None
                else generated[collection] - (len(hot) + len(cold) - in_both),
            }
    return report


def run_soak(minutes: float, rate: float, threshold_mb: float, base_home: Path, sample_seconds: float = 15.0,
             history_minutes: int = 90) -> dict:
    home = base_home / f"soak-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    env, _ = isolated_run_environment(home, SCBDA_EVENTS_PER_MINUTE=str(rate),
                                      SCBDA_ARCHIVE_THRESHOLD_MB=str(threshold_mb))
    embedded = Settings.from_env(env)  # what services_down needs: the services as embedded, not as explicit URIs
    endpoints, _ = services_up(embedded)
    settings = Settings.from_env({**env, **endpoints})
    full_env = {**env, **endpoints}
    started = time.monotonic()
    try:
        from scbda_assets.generator.backfill import backfill

        history = backfill(settings, minutes=history_minutes, rate=rate, end=None, seed=settings.seed, progress=False)
        generated = dict(history.get("events", {}))
        service_pids = {json.loads(f.read_text())["name"]: json.loads(f.read_text())["pid"]
                        for f in settings.services_dir.glob("*.json")}
        log = open(home / "soak-run.log", "ab")
        run = subprocess.Popen([sys.executable, "-m", "scbda_assets.cli", "run"], env=full_env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        samples: list[Sample] = []
        cache = redis.Redis.from_url(settings.redis_url)
        deadline = time.monotonic() + minutes * 60
        try:
            while time.monotonic() < deadline and run.poll() is None:
                with pymongo.MongoClient(settings.mongo_uri) as client:
                    size = client[settings.mongo_db].command("dbStats")["dataSize"]
                samples.append(Sample(
                    at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    kpi_staleness_s=_kpi_staleness(cache, settings),
                    mongo_data_mb=round(size / 2**20, 1),
                    archived_mb=round(_archived_bytes(settings) / 2**20, 1),
                    rss_mb=_process_tree_rss(run.pid, service_pids),
                ))
                print(json.dumps(dataclasses.asdict(samples[-1])), flush=True)
                time.sleep(sample_seconds)
        finally:
            stopped_at = _stop_when_idle(run, settings.dagster_home) if run.poll() is None else time.time()
        runs = _runs_summary(settings.dagster_home, stopped_at)
        for collection, count in _written_by_runs(settings.dagster_home).items():
            generated[collection] = generated.get(collection, 0) + count
        stale = [s.kpi_staleness_s for s in samples[4:] if s.kpi_staleness_s is not None]
        total_rss = [sum(s.rss_mb.values()) for s in samples]
        services_rss = [sum(mb for name, mb in s.rss_mb.items() if name in service_pids) for s in samples]
        return {
            "minutes": minutes,
            "rate_events_per_minute": rate,
            "archive_threshold_mb": threshold_mb,
            "state_folder": str(home),
            "elapsed_s": round(time.monotonic() - started, 1),
            "runs": runs,
            "failed_runs": len(runs["failed"]),
            "kpi_longest_staleness_s": round(max(stale), 1) if stale else None,
            "mongo_data_mb": {"first": samples[0].mongo_data_mb, "max": max(s.mongo_data_mb for s in samples),
                              "last": samples[-1].mongo_data_mb} if samples else None,
            "archived_mb": samples[-1].archived_mb if samples else 0,
            "rss_mb_peak_total": round(max(total_rss), 1) if total_rss else None,  # services, Dagster, dashboard
            "rss_mb_peak_embedded_services": round(max(services_rss), 1) if services_rss else None,
            "rss_mb_peak_by_process": _peak_by_process(samples),
            "ids": loss_report(settings, generated),
            "samples": [dataclasses.asdict(s) for s in samples],
        }
    finally:
        services_down(embedded)
        if port_open(settings.dagster_port):
            print("warning: the Dagster UI port is still open after the soak", file=sys.stderr)


def _peak_by_process(samples: list[Sample]) -> dict[str, float]:
    peak: dict[str, float] = {}
    for sample in samples:
        for name, mb in sample.rss_mb.items():
            peak[name] = max(peak.get(name, 0.0), mb)
    return peak
