"""Real headless Chromium against real servers: the dashboard (`streamlit run`, as the launcher starts it) on a Redis
filled by the real pipeline (generator backfill + KPI refresh), and the Dagster UI (`dagster-webserver`)."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request

import pytest

from dashboard import data
from dashboard import formatting as fmt
from scbda_assets.domain.reference import DCS
from scbda_assets_tests.dashboard import snapshots

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASSETS = ("regions_dim", "dcs_dim", "skus_dim", "suppliers_dim", "orders_fact", "shipments_fact", "inventory_fact",
          "inventory_state", "orders_archive", "shipments_archive", "inventory_archive", "kpi_inventory_level",
          "kpi_stockout_risk", "kpi_supplier_performance", "kpi_dc_utilization", "kpi_regional_fulfillment",
          "regional_daily_history")
SCHEDULES = ("generator_schedule", "kpi_schedule", "history_schedule")
SENSORS = ("archive_size_sensor",)
HOSTILE_DC = '<img src=x onerror="window.__pwned=1">'
HOSTILE_PRODUCT = "<script>window.__pwned=2</script>"


def open_dashboard(browser, url: str):
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(url)
    page.get_by_text("Total on-hand units").first.wait_for(timeout=90_000)
    try:
        page.locator('[data-testid="stTable"]').first.wait_for(timeout=60_000)
    except Exception as exc:
        raise AssertionError(f"no DC table on the page: {page.locator('body').inner_text()[:3000]}") from exc
    return page


def card_values(page) -> dict[str, str]:
    values = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        values[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return values


def test_dashboard_shows_the_pipeline_snapshot(spark_settings, redis_client, mongo_db, streamlit_server, browser):
    from scbda_assets.generator.backfill import backfill
    from scbda_assets.kpis.refresh import refresh_kpis_once

    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    backfill(spark_settings, minutes=30, rate=1500, end=end, seed=11, progress=False)
    refresh_kpis_once(spark_settings, as_of=end)
    snapshot = data.read_snapshot(redis_client, spark_settings)
    assert set(snapshot.kpis) == set(data.KPI_NAMES)
    assert len(snapshot.kpis["dc_utilization"].rows) == len(DCS) and len(snapshot.kpis["inventory_level"].rows) > 0
    expected = data.headline(snapshot)

    page = open_dashboard(browser, streamlit_server)

    shown = card_values(page)
    assert shown["Total on-hand units"] == fmt.compact_units(expected.total_on_hand) != fmt.MISSING
    assert shown["Stockout alerts"] == fmt.units(expected.stockout_alerts)
    assert shown["Average DC utilization"] == fmt.percent(expected.avg_utilization)
    revenue_label = next(label for label in shown if label.startswith("Revenue"))
    assert shown[revenue_label] == fmt.pkr(expected.revenue) and shown[revenue_label].startswith("PKR ")
    body = page.locator("body").inner_text()
    for dc in DCS:
        assert dc.dc_name in body
    assert "Last updated" in body and "Stale data" not in body and "$" not in body
    assert page.locator('[data-testid="stException"]').count() == 0 and "Traceback" not in body
    assert page.locator("canvas, svg.marks").count() >= 14  # the Vega-Lite charts rendered


def test_dashboard_never_executes_text_from_redis(redis_client, settings, streamlit_server, browser):
    moment = dt.datetime.now(dt.UTC)
    payloads = snapshots.build(moment, overrides={"DC-KHI": {"dc_name": HOSTILE_DC},
                                                  "SKU-DAIRY-001": {"product_name": HOSTILE_PRODUCT}})
    snapshots.write(redis_client, settings, payloads, moment)

    page = open_dashboard(browser, streamlit_server)
    page.wait_for_timeout(1500)

    assert page.evaluate("window.__pwned") is None
    assert HOSTILE_DC in page.locator('[data-testid="stTable"]').first.inner_text()  # shown literally
    assert page.locator('img[src="x"]').count() == 0


def test_dashboard_says_when_redis_has_no_data(redis_client, streamlit_server, browser):
    page = browser.new_page()
    page.goto(streamlit_server)
    page.get_by_text("No data yet").first.wait_for(timeout=90_000)
    body = page.locator("body").inner_text()
    assert "healthy" not in body.lower() and "Total on-hand units" not in body


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


def test_dagster_ui_shows_every_asset_and_running_automation(dagster_webserver, browser):
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

    page = browser.new_page(viewport={"width": 1600, "height": 3000})
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
