"""Dashboard benchmarks: Redis read time per refresh, and page-ready time in headless Chromium.

Redis holds a contract-shaped snapshot (SPEC §10) with a full day of `kpi:history` (1440 runs, the worst case a
refresh reads). "Read" is the one pipelined round trip of every key the app reads per refresh; "read + decode" adds
JSON decoding into DataFrames. Page ready = navigation start until the five KPI cards show their values; fully
drawn = until the stockout table and all seven chart views are drawn too; both in a fresh page of a running
`streamlit run dashboard/app.py` while the pipeline's work runs next to it (generator minute + KPI tick, back to
back); one warm-up load (the server's first imports) is reported apart, then the median of five.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from dashboard import data
from scbda_assets.services.process import free_port, stop_pid
from scbda_assets_tests.dashboard import snapshots

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
READS = 300
PAGE_LOADS = 5


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
    from playwright.sync_api import sync_playwright

    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="scbda-bench-dashboard-"))
    log = folder / "streamlit.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "streamlit"), "run", "dashboard/app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env={**os.environ, **settings.to_env()}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    pipeline = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
        pipeline = _pipeline_load(settings, folder)
        load_before = os.getloadavg()[0]
        ready, drawn = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(PAGE_LOADS + 1):
                page = browser.new_page(viewport={"width": 1500, "height": 4200})
                started = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}")
                page.locator('[data-testid="stMetricValue"]').nth(4).wait_for(timeout=120_000)
                ready.append(time.perf_counter() - started)
                page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=120_000)
                page.locator("canvas, svg.marks").nth(6).wait_for(timeout=120_000)
                drawn.append(time.perf_counter() - started)
                page.close()
            browser.close()
        ticks = (folder / "ticks").read_text().count("\n") if (folder / "ticks").exists() else 0
    finally:
        if pipeline is not None:  # the loop and the command it is running: its own process group
            os.killpg(pipeline.pid, signal.SIGTERM)
            pipeline.wait(30)
        stop_pid(server.pid, 20)
    under = (f"while the pipeline runs: one minute of events and one KPI tick (`scbda kpis`, Spark Connect) back "
             f"to back, {ticks} ticks during the loads, load average {load_before:.1f} → {os.getloadavg()[0]:.1f}")
    return [
        _row("page ready, first load", ready[0], "s", "", "fresh server: includes the app's first imports"),
        _row("page ready (median)", statistics.median(ready[1:]), "s", "<= 3",
             f"median of {PAGE_LOADS} further loads in new pages, until the five KPI cards show their values, "
             + under),
        _row("page fully drawn (median)", statistics.median(drawn[1:]), "s", "",
             "the same loads, until the stockout table and all seven chart views are drawn"),
    ]


def _pipeline_load(settings, folder: Path) -> subprocess.Popen:
    """The pipeline's work, back to back (heavier than a real minute, which idles between its runs): the generator
    writes the next minute at the default rate, then a KPI tick computes the five KPIs with Spark and writes Redis.
    Each tick appends a line to ``folder/ticks``. The KPIs go to their own key prefix, so the page keeps showing the
    snapshot written above (the loads measure the same page each time)."""
    scbda = Path(sys.executable).parent / "scbda"
    loop = (f'while true; do "{scbda}" generate --minutes 1 >/dev/null 2>&1; '
            f'"{scbda}" kpis >/dev/null 2>&1 && echo tick >> "{folder}/ticks"; done')
    env = {**os.environ, **settings.to_env(), "SCBDA_MONGO_DB": "bench_dashboard_load",
           "SCBDA_KEY_PREFIX": "bench-load:"}
    return subprocess.Popen(["bash", "-c", loop], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")
