"""Real headless Chromium against real servers: one `streamlit run` dashboard (as the launcher starts it) for the
whole module on its own redis-server, and the Dagster UI (`dagster-webserver`).

The dashboard tests share one server (starting Streamlit costs seconds); each writes the Redis state it needs
and waits for the page's own refresh (every 5 s) to show it, as a viewer would see it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from dashboard import data
from dashboard import formatting as fmt
from scbda_assets.domain.reference import DCS
from scbda_assets.services.process import free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.settings import Settings
from scbda_assets_tests.dashboard import snapshots
from scbda_assets_tests.dashboard.conftest import BIN, CHROMIUM_ARGS, spawn, stop, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASSETS = ("regions_dim", "dcs_dim", "skus_dim", "suppliers_dim", "orders_fact", "shipments_fact", "inventory_fact",
          "inventory_state", "orders_archive", "shipments_archive", "inventory_archive", "kpi_inventory_level",
          "kpi_stockout_risk", "kpi_supplier_performance", "kpi_dc_utilization", "kpi_regional_fulfillment")
SCHEDULES = ("generator_schedule", "kpi_schedule")
SENSORS = ("archive_size_sensor",)
HOSTILE_DC = '<img src=x onerror="window.__pwned=1">'
HOSTILE_PRODUCT = "<script>window.__pwned=2</script>"
# Large, realistic magnitudes (a busy chain): the cards must still show every digit they print.
BIG = {sku: {"on_hand_qty": 1_757_382} for sku in ("SKU-STAPLE-001", "SKU-DAIRY-001")}
BIG.update({"PK-SINDH": {"revenue": 987_654_321.5, "lost_revenue": 12_345_678.9}})


class Stack:
    """The module's redis-server (stoppable, to show the unreachable state) and the dashboard's URL."""

    def __init__(self, service: EmbeddedRedis, settings: Settings, url: str):
        self.service, self.settings, self.url = service, settings, url

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def fill(self, age_s: float = 3, **kwargs) -> dict:
        moment = dt.datetime.now(dt.UTC)
        client = self.client()
        client.flushdb()
        payloads = snapshots.build(moment - dt.timedelta(seconds=age_s + 2), **kwargs)
        snapshots.write(client, self.settings, payloads, moment - dt.timedelta(seconds=age_s))
        snapshots.write_history(client, self.settings, moment, runs=40)
        snapshots.write_daily(client, self.settings, moment)
        snapshots.write_archive_status(client, self.settings, moment)
        return payloads


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("dashboard_stack")
    service = EmbeddedRedis(Settings.from_env({"SCBDA_HOME": str(home), "SCBDA_REDIS_PORT": str(free_port())}))
    running, _ = service.ensure()
    settings = Settings.from_env({"SCBDA_HOME": str(home), "SCBDA_REDIS_URL": running.url})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
    env.update({"SCBDA_HOME": str(home), "SCBDA_REDIS_URL": running.url, "PYTHONFAULTHANDLER": "1"})
    port = free_port()
    log = home / "streamlit.log"
    process = spawn([str(BIN / "streamlit"), "run", "dashboard/app.py", "--server.address", "127.0.0.1",
                     "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                    env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90, process, log)
        yield Stack(service, settings, f"http://127.0.0.1:{port}")
        assert process.poll() is None, f"streamlit died: {log.read_text()[-3000:]}"
    finally:
        stop(process)
        service.stop()


@pytest.fixture(scope="module")
def module_browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def pages(module_browser):
    """New pages on the module's browser, closed after the test (an open page re-renders every 5 s)."""
    opened = []

    def new_page(**kwargs):
        opened.append(module_browser.new_page(**kwargs))
        return opened[-1]

    yield new_page
    for page in opened:
        page.close()


def open_dashboard(new_page, url: str, width: int = 1500, **context):
    page = new_page(viewport={"width": width, "height": 2600}, **context)
    page.goto(url)
    page.get_by_text("On-hand units").first.wait_for(timeout=60_000)
    try:
        page.get_by_text("Download CSV").first.wait_for(timeout=30_000)
        page.locator("canvas, svg.marks").nth(5).wait_for(timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the page did not fill: {page.locator('body').inner_text()[:3000]}") from exc
    return page


def card_values(page) -> dict[str, str]:
    values = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        values[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return values


def wait_text(page, text: str, timeout_s: float = 30) -> None:
    """Wait until the page's text contains ``text`` (the fragment redraws every 5 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in page.locator("body").inner_text():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"{text!r} not on the page after {timeout_s:.0f} s: {page.locator('body').inner_text()[:2000]}")


def test_filled_panels_show_the_snapshot(stack, pages):
    payloads = stack.fill()
    snapshot = data.read_snapshot(stack.client(), stack.settings)
    expected = data.headline(snapshot)

    page = open_dashboard(pages, stack.url)

    shown = card_values(page)
    assert shown["On-hand units"] == fmt.compact_units(expected.total_on_hand) != fmt.MISSING
    assert shown["Stockout alerts"] == fmt.units(payloads["stockout_risk"]["alert_count"])
    assert shown["DC utilization"] == fmt.percent(expected.avg_utilization)
    assert shown["Revenue (PKR)"] == fmt.compact_units(expected.revenue) != fmt.MISSING
    assert shown["Lead time"] == fmt.days(expected.avg_lead_time_days)
    assert "PKR" in page.locator('[data-testid="stMetric"]').nth(4).inner_text()  # currency in the label, never $
    # each live-window card shows its change against the run 15 min before; the supplier card compares with 24 h
    # before, which 40 minutes of history do not reach
    assert page.locator('[data-testid="stMetricDelta"]').count() == 4
    body = page.locator("body").inner_text()
    for dc in DCS:
        assert dc.city in body  # the map's labels
    for heading in ("DC utilization and inbound", "Stockout risk", "Supplier scorecard (30 days)", "Trends",
                    "Archive (cold store)", "Regional revenue and fill rate", "Inventory by DC and category"):
        assert heading in body, heading
    assert "Last updated" in body and "Stale data" not in body and "$" not in body
    assert page.locator('[data-testid="stDataFrame"]').count() == 5  # DC, stockout, scorecard, archive ×2
    assert page.locator('[data-testid="stException"]').count() == 0 and "Traceback" not in body
    assert page.locator("canvas, svg.marks").count() >= 7  # the Vega-Lite charts rendered (trends: one view)
    page.get_by_text("30 d", exact=True).click()
    wait_text(page, "Per UTC day, 30 of the last 30 days held data")


def test_csv_download_of_the_stockout_table(stack, pages):
    payloads = stack.fill()
    page = open_dashboard(pages, stack.url, accept_downloads=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV (50 rows)").first.click()
    assert download.value.suggested_filename == "stockout_risk.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert len(rows) == len(payloads["stockout_risk"]["rows"]) == 50
    assert {"sku_id", "dc_id", "days_to_stockout", "next_receipt_ts", "stockout_probability", "severity"} <= set(rows[0])
    assert rows[0]["severity"] == "critical"
    expected = {(r["sku_id"], r["dc_id"]): r["on_hand_qty"] for r in payloads["stockout_risk"]["rows"]}
    assert all(float(row["on_hand_qty"]) == expected[(row["sku_id"], row["dc_id"])] for row in rows)


def _bar_centre(page, chart, rgb: tuple[int, int, int]) -> tuple[float, float]:
    """Page coordinates of the middle of the widest horizontal run of ``rgb`` in the chart (a bar, not the
    2-pixel threshold rule of the same colour)."""
    from PIL import Image

    box = chart.bounding_box()
    image = Image.open(io.BytesIO(chart.screenshot())).convert("RGB")
    scale = image.width / box["width"]
    best = (0, 0, 0)  # length, x, y
    pixels = image.load()
    for y in range(0, image.height, 2):
        run = 0
        for x in range(image.width):
            if all(abs(a - b) <= 12 for a, b in zip(pixels[x, y], rgb)):
                run += 1
                if run > best[0]:
                    best = (run, x - run // 2, y)
            else:
                run = 0
    assert best[0] > 20 * scale, f"no bar of colour {rgb} in the chart"
    return box["x"] + best[1] / scale, box["y"] + best[2] / scale


def test_clicking_a_dc_bar_filters_the_page(stack, pages):
    stack.fill()
    page = open_dashboard(pages, stack.url)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    # Lahore (87 %) is the only DC in the "high" colour
    x, y = _bar_centre(page, chart, (0xF9, 0xA8, 0x25))
    page.mouse.click(x, y)
    wait_text(page, "DC-LHE · Lahore Distribution Hub")
    deadline = time.monotonic() + 30
    while card_values(page).get("DC utilization") != "87.0 %" and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert card_values(page)["DC utilization"] == "87.0 %"
    assert page.get_by_role("button", name="Download CSV (10 rows)").count() >= 1  # stockout rows of one DC


@pytest.mark.parametrize("width", [1280, 1920])
def test_no_number_is_cut_off(stack, pages, width):
    stack.fill(overrides=BIG)
    page = open_dashboard(pages, stack.url, width=width)
    page.wait_for_timeout(1000)
    overflowing = page.evaluate("""() => [...document.querySelectorAll(`[data-testid="stMetricValue"],
        [data-testid="stMetricValue"] *, [data-testid="stMetricDelta"], [data-testid="stMetricLabel"] p,
        [data-testid="stCaptionContainer"]`)]
        .filter(e => e.scrollWidth > e.clientWidth + 1 || e.innerText.includes('…'))
        .map(e => e.innerText)""")
    assert overflowing == [], f"cut off at {width} px: {overflowing}"
    shown = card_values(page)
    assert shown["Revenue (PKR)"].endswith("B") and len(shown["Revenue (PKR)"]) <= 6, shown
    assert shown["On-hand units"].endswith(("K", "M")), shown


def test_never_executes_text_from_redis(stack, pages):
    stack.fill(overrides={"DC-KHI": {"dc_name": HOSTILE_DC}, "SKU-DAIRY-001": {"product_name": HOSTILE_PRODUCT}})
    page = open_dashboard(pages, stack.url)
    page.wait_for_timeout(1500)
    assert page.evaluate("window.__pwned") is None
    assert page.locator('img[src="x"]').count() == 0
    page.get_by_role("combobox", name="Distribution centre").click()
    page.get_by_role("option").first.wait_for(timeout=10_000)
    assert any(HOSTILE_DC in text for text in page.get_by_role("option").all_inner_texts())  # as plain text
    assert page.evaluate("window.__pwned") is None


def test_stale_then_empty_then_unreachable_then_recovered(stack, pages):
    stack.fill(age_s=400)
    page = pages(viewport={"width": 1400, "height": 1600})
    page.goto(stack.url)
    wait_text(page, "Stale data: the KPIs cover data up to 6 min")
    wait_text(page, "On-hand units")  # the last numbers stay, flagged
    assert "Stale data" in page.locator("body").inner_text()

    stack.client().flushdb()
    wait_text(page, "No data yet")
    body = page.locator("body").inner_text()
    assert "healthy" not in body.lower() and "On-hand units" not in body

    stack.service.stop()
    try:
        wait_text(page, "Redis is unreachable at")
        body = page.locator("body").inner_text()
        assert "Traceback" not in body and "recovers by itself" in body
    finally:
        stack.service.ensure()
    stack.fill()
    wait_text(page, "On-hand units", 40)
    wait_text(page, "Last updated")
    assert "Redis is unreachable" not in page.locator("body").inner_text()


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


def test_dagster_ui_shows_every_asset_and_running_automation(dagster_webserver, pages):
    nodes = graphql(dagster_webserver, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert set(ASSETS) <= keys, sorted(set(ASSETS) - keys)
    repos = graphql(dagster_webserver, """{ repositoriesOrError { ... on RepositoryConnection { nodes {
        schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }""")
    repo = repos["repositoriesOrError"]["nodes"][0]
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert all(schedules.get(name) == "RUNNING" for name in SCHEDULES), schedules
    assert all(sensors.get(name) == "RUNNING" for name in SENSORS), sensors

    page = pages(viewport={"width": 1600, "height": 3000})  # the module's browser (one Playwright per process)
    page.goto(f"{dagster_webserver}/assets?view=flat")
    page.get_by_text("regions_dim", exact=True).first.wait_for(timeout=120_000)
    catalog = page.locator("body").inner_text()
    assert [name for name in ASSETS if name not in catalog] == []

    page.goto(f"{dagster_webserver}/automation")
    page.get_by_text("kpi_schedule").first.wait_for(timeout=60_000)
    automation = page.locator("body").inner_text()
    for name in SCHEDULES + SENSORS:
        assert name in automation
    # each automation row has an on/off switch; they load after the names: all of them end up switched on
    switches = page.locator('input[type="checkbox"]:checked')
    deadline = time.monotonic() + 60
    while switches.count() < len(SCHEDULES) + len(SENSORS) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert switches.count() >= len(SCHEDULES) + len(SENSORS)
