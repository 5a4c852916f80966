"""Dashboard benchmarks: Redis read time per refresh, and page-ready time in headless Chromium.

Redis holds a contract-shaped snapshot (SPEC §10) with a full day of `kpi:history` (1440 runs, the worst case a
refresh reads). "Read" is the one pipelined round trip of every key the app reads per refresh; "read + decode" adds
JSON decoding into DataFrames. Page ready = navigation start until the five KPI cards show their values; fully
drawn = until the stockout table and all seven chart views are drawn too; both in fresh pages of the dashboard of a
running pipeline (`scbda run` in its own state folder: first-start seed, dagster dev with its minute schedules, the
dashboard), once its third KPI run has ended; one warm-up load (the server's first imports) is reported apart,
then the median of five.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from dashboard import data
from scbda_assets.contract import HISTORY_STREAM, LAST_UPDATE_KEY
from scbda_assets.launcher import isolated_run_environment
from scbda_assets_tests.dashboard import snapshots

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
READS = 300
PAGE_LOADS = 5
PIPELINE_SEED_DAYS = 0.05  # 72 minutes: every panel has numbers, the seed takes seconds
SETTLED_RUNS = 3


def _row(metric: str, value: float, unit: str, target: str = "", note: str = "") -> dict:
    return {"benchmark": "dashboard", "metric": metric, "value": round(value, 3), "unit": unit, "target": target,
            "note": note}


def _median_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(ctx) -> list[dict]:
    settings = ctx["settings"]
    client = data.connect(data.redis_url(settings))
    now = dt.datetime.now(dt.UTC)
    snapshots.write(client, settings, snapshots.build(now), now)
    client.persist(settings.redis_key("kpi:last_update"))
    for name in data.KPI_NAMES:
        client.persist(settings.redis_key(f"kpi:{name}"))
    snapshots.write_history(client, settings, now, runs=data.HISTORY_ENTRIES)
    snapshots.write_daily(client, settings, now)
    snapshots.write_archive_status(client, settings, now)
    keys = len(data.snapshot_keys(settings))
    cache = data.HistoryCache()
    data.read_snapshot(client, settings, history=cache)  # the first refresh of a server reads the whole day
    rows = [
        _row("redis read per refresh (median)",
             _median_ms(lambda: data.read_raw(client, settings, since=cache.last_id), READS), "ms", "<= 10",
             f"steady state: {keys} keys in one pipelined round trip, trend stream read from the last entry seen; "
             f"{READS} reads"),
        _row("redis read + decode per refresh (median)",
             _median_ms(lambda: data.read_snapshot(client, settings, history=cache), READS), "ms", "",
             "the same, decoded into DataFrames (what the app does per refresh)"),
        _row("redis read, first refresh (median)",
             _median_ms(lambda: data.read_raw(client, settings), READS // 10), "ms", "",
             f"whole trend stream ({data.HISTORY_ENTRIES} entries), once per server start"),
    ]
    rows += _page_ready(settings)
    client.close()
    return rows


def _page_ready(settings) -> list[dict]:
    if not os.path.exists(CHROMIUM):
        return [_row("page ready", float("nan"), "s", "<= 3", f"not measured: {CHROMIUM} is not installed")]
    folder = Path(tempfile.mkdtemp(prefix="scbda-bench-dashboard-"))
    with _running_pipeline(folder) as (url, cache):
        runs_before, load_before = cache.xlen(HISTORY_STREAM), os.getloadavg()[0]
        ready, drawn = _page_loads(url)
        runs = cache.xlen(HISTORY_STREAM) - runs_before
    under = (f"while the pipeline runs (`scbda run`: dagster dev with its minute schedules, the dashboard, after a "
             f"{PIPELINE_SEED_DAYS * 1440:.0f}-minute first-start seed, from its KPI run {SETTLED_RUNS} on); "
             f"{runs} KPI runs ended during the loads; load "
             f"average {load_before:.1f} → {os.getloadavg()[0]:.1f}")
    return [
        _row("page ready, first load", ready[0], "s", "", "the dashboard's first page after start: its first imports"),
        _row("page ready (median)", statistics.median(ready[1:]), "s", "<= 3",
             f"median of {PAGE_LOADS} further loads in new pages, until the five KPI cards show their values, "
             + under),
        _row("page fully drawn (median)", statistics.median(drawn[1:]), "s", "",
             "the same loads, until the stockout table and all seven chart views are drawn"),
    ]


def _page_loads(url: str) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    ready, drawn = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(PAGE_LOADS + 1):
            page = browser.new_page(viewport={"width": 1500, "height": 4200})
            started = time.perf_counter()
            page.goto(url)
            page.locator('[data-testid="stMetricValue"]').nth(4).wait_for(timeout=120_000)
            ready.append(time.perf_counter() - started)
            page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=120_000)
            page.locator("canvas, svg.marks").nth(6).wait_for(timeout=120_000)
            drawn.append(time.perf_counter() - started)
            page.close()
        browser.close()
    return ready, drawn


@contextlib.contextmanager
def _running_pipeline(folder: Path):
    """`scbda run` in its own state folder and ports, as a user starts it (first-start seed, dagster dev with the
    generator and KPI schedules, the dashboard); yields the dashboard's URL and a Redis client once it has settled
    (``_settled``); Ctrl-C (SIGINT to its process group) stops everything it started."""
    env, ports = isolated_run_environment(folder / ".scbda", SCBDA_SEED_DAYS=str(PIPELINE_SEED_DAYS))
    run = subprocess.Popen([str(Path(sys.executable).parent / "scbda"), "run"], cwd=REPO_ROOT, env=env,
                           stdout=(folder / "run.log").open("wb"), stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, start_new_session=True)
    cache = redis.Redis(host="127.0.0.1", port=ports["REDIS"])
    try:
        deadline = time.monotonic() + 600
        while not _settled(cache):
            if run.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scbda run gave no KPI snapshot (see {folder / 'run.log'})")
            time.sleep(2)
        yield f"http://127.0.0.1:{ports['DASHBOARD']}", cache
    finally:
        cache.close()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(180)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(30)


def _settled(cache: redis.Redis) -> bool:
    """The pipeline's start-up is behind it: SETTLED_RUNS KPI runs ended (the first ones build the history layer
    from the seed; the page is measured in the steady state of the running pipeline, not in that burst)."""
    try:
        return cache.exists(LAST_UPDATE_KEY) and cache.xlen(HISTORY_STREAM) >= SETTLED_RUNS
    except redis.RedisError:  # not started yet
        return False
