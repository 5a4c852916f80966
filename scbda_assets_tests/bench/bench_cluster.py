"""Scale-out on one machine: KPI tick p50/p95 and archival MB/s on the embedded default (Connect server on
`local[2]`, one mongod) against the standalone cluster (Connect server driving two 1-core workers, a 3-member
replica set with majority writes), in one run, same data. The figure that matters is the ratio: on one 2-core
machine the cluster pays for JVM-to-JVM shuffles and majority acknowledgements and gains no cores.

Run alone: `python -m scbda_assets_tests.bench.run_all --only cluster`.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import uuid

from scbda_assets.services.cluster import cluster_down, cluster_up
from scbda_assets.settings import Settings

MINUTES = int(os.environ.get("SCBDA_BENCH_CLUSTER_MINUTES", "240"))
RATE = float(os.environ.get("SCBDA_BENCH_CLUSTER_RATE", "300"))
TICKS = int(os.environ.get("SCBDA_BENCH_CLUSTER_TICKS", "6"))


def _measure(label: str, env: dict[str, str], end: dt.datetime) -> dict:
    from scbda_assets.archive.cli import archive_once
    from scbda_assets.generator.backfill import backfill
    from scbda_assets.kpis.refresh import refresh_kpis_once

    database = f"bench_cluster_{label}_{uuid.uuid4().hex[:6]}"
    settings = Settings.from_env({
        **env,
        "SCBDA_MONGO_DB": database,
        "SCBDA_ARCHIVE_URI": (Settings.from_env(env).home / f"archive_{database}").as_uri(),
        "SCBDA_ARCHIVE_THRESHOLD_MB": "0.01",
        "SCBDA_ARCHIVE_SAFETY_MINUTES": "16",
    })
    generated = backfill(settings, minutes=MINUTES, rate=RATE, end=end, seed=5, progress=False)
    refresh_kpis_once(settings, as_of=end)  # warm-up: first session, classes loaded on the executors
    ticks = []
    for _ in range(TICKS):
        started = time.perf_counter()
        refresh_kpis_once(settings, as_of=end)
        ticks.append(time.perf_counter() - started)
    started = time.perf_counter()
    archived = archive_once(settings, now=end + dt.timedelta(minutes=1))
    archive_seconds = time.perf_counter() - started
    batch = archived.get("batch") or {}
    source_mb = (batch.get("source_bytes") or 0) / 1024**2
    return {
        "events": generated["total_events"],
        "p50": statistics.median(ticks),
        "p95": sorted(ticks)[max(0, round(0.95 * len(ticks)) - 1)],
        "archive_mb": source_mb,
        "archive_mb_s": source_mb / archive_seconds if archive_seconds else 0.0,
        "archive_seconds": archive_seconds,
    }


def run(ctx) -> list[dict]:
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    local_env = {**ctx["settings"].to_env()}
    local = _measure("local", local_env, end)

    cluster_home = ctx["home"] / "cluster"
    cluster_settings = Settings.from_env({"SCBDA_HOME": str(cluster_home), "SCBDA_REDIS_URL": ctx["endpoints"]["SCBDA_REDIS_URL"]})
    started = time.perf_counter()
    try:
        endpoints, _ = cluster_up(cluster_settings)
        start_seconds = time.perf_counter() - started
        cluster = _measure("cluster", {**endpoints, "SCBDA_HOME": str(cluster_home)}, end)
    finally:
        cluster_down(cluster_settings)

    rows = []
    note = f"{MINUTES} min at {RATE:g} events/min ({local['events']} events), {TICKS} ticks after a warm-up"
    for name, figures in (("local[2]", local), ("cluster 2 workers", cluster)):
        rows += [
            {"benchmark": "cluster", "metric": f"KPI tick p50, {name}", "value": round(figures["p50"], 2), "unit": "s",
             "note": note},
            {"benchmark": "cluster", "metric": f"KPI tick p95, {name}", "value": round(figures["p95"], 2), "unit": "s"},
            {"benchmark": "cluster", "metric": f"archival, {name}", "value": round(figures["archive_mb_s"], 2),
             "unit": "MB/s", "note": f"{figures['archive_mb']:.1f} MB BSON in {figures['archive_seconds']:.1f} s"},
        ]
    rows += [
        {"benchmark": "cluster", "metric": "KPI tick p50 ratio cluster/local[2]",
         "value": round(cluster["p50"] / local["p50"], 2), "unit": "x"},
        {"benchmark": "cluster", "metric": "KPI tick p95 ratio cluster/local[2]",
         "value": round(cluster["p95"] / local["p95"], 2), "unit": "x"},
        {"benchmark": "cluster", "metric": "archival MB/s ratio cluster/local[2]",
         "value": round(cluster["archive_mb_s"] / local["archive_mb_s"], 2) if local["archive_mb_s"] else None,
         "unit": "x"},
        {"benchmark": "cluster", "metric": "cluster start (services up --cluster)", "value": round(start_seconds, 1),
         "unit": "s"},
    ]
    return rows
