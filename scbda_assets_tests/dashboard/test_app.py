"""The Streamlit app itself (AppTest runs dashboard/app.py as `streamlit run` would, without a browser) against the
suite's real Redis: cards, filters, stale / empty / unreachable states, recovery, escaping of hostile text."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import formatting as fmt
from scbda_assets.services.process import free_port
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.settings import Settings
from scbda_assets_tests.dashboard import snapshots

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
HOSTILE_DC = "<img src=x onerror=alert(1)> **Karachi** [x](javascript:alert(1)) $PWN$ :smile:"
HOSTILE_PRODUCT = "<script>alert('milk')</script>"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_app(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def fill(redis_client, settings, age_s: float = 5, **kwargs) -> dict:
    payloads = snapshots.build(now() - dt.timedelta(seconds=age_s + 2), **kwargs)
    snapshots.write(redis_client, settings, payloads, now() - dt.timedelta(seconds=age_s))
    return payloads


def cards(at: AppTest) -> dict[str, tuple[str, str | None]]:
    return {metric.label: (metric.value, metric.delta) for metric in at.metric}


def texts(at: AppTest) -> list[str]:
    """Every piece of Markdown-rendered text on the page."""
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader")
    return [element.value for kind in kinds for element in getattr(at, kind)] + [m.label for m in at.metric]


def chart_parts(at: AppTest) -> list[list[pd.DataFrame]]:
    """Each chart's datasets, one frame per dataset."""
    return [[pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
            for chart in at.get("vega_lite_chart")]


def chart_data(at: AppTest) -> list[pd.DataFrame]:
    """The data each Vega-Lite chart received (decoded from its Arrow datasets)."""
    frames = []
    for chart in at.get("vega_lite_chart"):
        parts = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
        frames.append(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    return frames


def table(at: AppTest, first_column: str) -> pd.DataFrame:
    """The st.dataframe whose first column is ``first_column``."""
    return next(d.value for d in at.dataframe if list(d.value.columns)[:1] == [first_column])


def test_cards_show_the_snapshot_in_pkr_with_the_change_against_the_previous_period(redis_client, settings,
                                                                                    scbda_environ):
    payloads = fill(redis_client, settings)
    snapshots.write_history(redis_client, settings, now(), runs=20)
    snapshots.write_daily(redis_client, settings, now())

    at = run_app()

    shown = cards(at)
    regions = payloads["regional_fulfillment"]["rows"]
    total = sum(r["on_hand_qty"] for r in payloads["inventory_level"]["rows"])
    assert shown["On-hand units"][0] == fmt.compact_units(total)
    assert shown["Stockout alerts"][0] == str(payloads["stockout_risk"]["alert_count"])
    assert shown["DC utilization"][0] == "73.6 %"
    revenue = sum(r["revenue"] for r in regions)
    fill_rate = sum(r["units_fulfilled"] for r in regions) / sum(r["units_requested"] for r in regions)
    assert shown["Revenue (PKR)"][0] == fmt.compact_units(revenue)
    received = [r for r in payloads["supplier_performance"]["rows"] if r["shipments_received"]]
    lead = sum(r["avg_actual_lead_time_days"] * r["shipments_received"] for r in received) / sum(
        r["shipments_received"] for r in received)
    assert shown["Lead time"][0] == fmt.days(lead)
    captions = [c.value for c in at.caption]
    assert "2 DC over 85 %" in captions
    assert any(c.startswith(f"fill rate {fmt.percent(fill_rate)} (") and c.endswith("15-min window") for c in captions)
    # Change against the run one window (15 min) earlier, from kpi:history.
    history = pd.DataFrame([{k.decode(): v.decode() for k, v in fields.items()}
                            for _, fields in redis_client.xrange(settings.redis_key("kpi:history"))])
    as_of = dt.datetime.fromisoformat(payloads["regional_fulfillment"]["as_of"])
    history["gap"] = (pd.to_datetime(history["as_of"]) - (as_of - dt.timedelta(minutes=15))).abs()
    before = history.sort_values("gap").iloc[0]
    assert shown["On-hand units"][1] == f"{(total - float(before['total_on_hand'])) / float(before['total_on_hand']) * 100:+.1f} %"
    assert shown["Stockout alerts"][1] == f"{payloads['stockout_risk']['alert_count'] - int(before['stockout_alerts']):+,}"
    assert not any("$" in text for text in texts(at) + [v for v, _ in shown.values()])
    # kpi:last_update was written 5 s before the page ran (a loaded machine adds a few seconds)
    ages = [int(m.group(1)) for m in map(re.compile(r"Last updated (\d+) s ago").match, texts(at)) if m]
    assert len(ages) == 1 and 5 <= ages[0] < 60
    assert not at.warning and not at.error
    assert len(at.get("vega_lite_chart")) == 7  # 6 views + the 6 trends (24 h) drawn as one view
    stockout = table(at, "Severity")
    assert len(stockout) == 50 and stockout["Severity"].iloc[0] == "critical"
    assert {"Cover", "Next receipt", "P(stockout)", "On order"} <= set(stockout.columns)


def test_supplier_scorecard_explains_a_supplier_without_receipts(redis_client, settings, scbda_environ):
    payloads = fill(redis_client, settings)
    at = run_app()
    card = table(at, "Supplier")
    assert len(card) == 4
    importer = card[card["Supplier"] == "Global Trading Corp"].iloc[0]
    assert importer["Note"] == "no receipt yet: lead time ~7 d" and importer["On-time"] == "—"
    local = card[card["Supplier"] == "National Foods (Pvt) Ltd"].iloc[0]
    row = next(r for r in payloads["supplier_performance"]["rows"] if r["supplier_id"] == "SUP-LOCAL-001")
    assert local["Note"] == "" and local["On-time"] == fmt.percent(row["on_time_rate"])
    assert local["In transit"] == str(row["in_transit"]) and local["Overdue"] == str(row["overdue"])
    assert local["Actual lead"] == (f"{row['avg_actual_lead_time_days']:.2f} ± "
                                    f"{row['stddev_actual_lead_time_days']:.2f} d")
    assert "Supplier scorecard (30 days)" in [h.value for h in at.subheader]


def test_every_table_has_a_csv_download(redis_client, settings, scbda_environ):
    fill(redis_client, settings)
    at = run_app()
    labels = [b.proto.label for b in at.get("download_button")]
    assert len(labels) == 5 and all(label.startswith("Download CSV (") for label in labels), labels
    names = {b.proto.file_name if hasattr(b.proto, "file_name") else "" for b in at.get("download_button")}
    assert len(at.get("download_button")) == 5, names


def test_trend_ranges_use_the_stream_for_24h_and_the_daily_history_for_7_and_30_days(redis_client, settings,
                                                                                     scbda_environ):
    fill(redis_client, settings)
    snapshots.write_history(redis_client, settings, now(), runs=20)
    document = snapshots.write_daily(redis_client, settings, now(), days=30)
    at = run_app()
    assert len(at.get("vega_lite_chart")) == 7
    at.radio(key="trend_range").set_value("7 d")
    run_app(at)
    assert "Per UTC day, 7 of the last 7 days held data; region filter applies to orders." in [c.value for c in at.caption]
    revenue = next(part for part in chart_parts(at)[-1] if "revenue" in part.columns)
    expected = pd.DataFrame(document["regions"]).groupby("date")["revenue"].sum().tail(7)
    assert list(revenue["revenue"].round(2)) == list(expected.round(2))
    at.radio(key="trend_range").set_value("30 d")
    run_app(at)
    assert len(next(part for part in chart_parts(at)[-1] if "revenue" in part.columns)) == 30


def test_daily_history_missing_says_so(redis_client, settings, scbda_environ):
    fill(redis_client, settings)
    at = run_app()
    at.radio(key="trend_range").set_value("30 d")
    run_app(at)
    assert any(i.value.startswith("No daily history yet") for i in at.info)


def test_archive_status_is_shown_in_the_footer(redis_client, settings, scbda_environ):
    fill(redis_client, settings)
    at = run_app()
    assert any(c.value.startswith("No archive status in Redis yet") for c in at.caption)
    snapshots.write_archive_status(redis_client, settings, now())
    run_app(at)
    collections = table(at, "Collection")
    assert list(collections["Collection"]) == ["orders_fact", "shipments_fact", "inventory_fact"]
    assert list(collections["Documents"]) == ["4,123,456", "1,234", "140,000"]
    assert collections["Size"].iloc[0] == "1,234.6 MB"
    runs = table(at, "Last runs: started")
    assert list(runs["MB/s"]) == ["6.4", "6.4"] and list(runs["Size"]) == ["80.0 MB", "80.0 MB"]


def test_filters_reach_every_view_they_apply_to(redis_client, settings, scbda_environ):
    payloads = fill(redis_client, settings)
    at = run_app()
    unfiltered_supplier = cards(at)["Lead time"]

    at.multiselect(key="filter_region").set_value(["PK-SINDH"])
    run_app(at)

    khi_units = sum(r["on_hand_qty"] for r in payloads["inventory_level"]["rows"] if r["dc_id"] == "DC-KHI")
    sindh = next(r for r in payloads["regional_fulfillment"]["rows"] if r["region_id"] == "PK-SINDH")
    shown = cards(at)
    assert shown["On-hand units"][0] == fmt.compact_units(khi_units)
    assert not shown["On-hand units"][1]  # no change under a filter: the history is whole-chain
    assert shown["DC utilization"][0] == "62.0 %"
    assert shown["Revenue (PKR)"][0] == fmt.compact_units(sindh["revenue"])
    assert shown["Lead time"][0] == unfiltered_supplier[0]  # suppliers have no region
    assert set(table(at, "Severity")["DC"]) == {"Karachi Central Warehouse"}
    assert list(table(at, "DC")["DC"]) == ["DC-KHI"]
    assert list(at.multiselect(key="filter_dc").options) == ["DC-KHI · Karachi Central Warehouse"]
    utilization, dc_map, inventory, revenue, fill_rate, suppliers = chart_data(at)[:6]
    assert set(inventory["dc_name"]) == {"Karachi Central Warehouse"}
    assert set(utilization.dropna(subset=["dc_name"])["dc_name"]) == {"Karachi Central Warehouse"}
    assert set(dc_map.dropna(subset=["dc_name"])["dc_name"]) == {"Karachi Central Warehouse"}
    assert len(suppliers["supplier_name"].unique()) == 4
    assert set(revenue["region_name"]) == set(fill_rate["region_name"]) == {"Sindh Province"}

    at.multiselect(key="filter_region").set_value([])
    at.multiselect(key="filter_category").set_value(["Dairy"])
    run_app(at)
    at.multiselect(key="filter_sku").set_value(["SKU-DAIRY-002"])
    at.multiselect(key="filter_dc").set_value(["DC-LHE", "DC-MUL"])
    run_app(at)

    pairs = [r for r in payloads["stockout_risk"]["rows"]
             if r["sku_id"] == "SKU-DAIRY-002" and r["dc_id"] in ("DC-LHE", "DC-MUL")]
    stockout = table(at, "Severity")
    assert sorted(stockout["Product"] + "@" + stockout["DC"]) == sorted(r["product_name"] + "@" + r["dc_name"]
                                                                        for r in pairs)
    assert cards(at)["Stockout alerts"][0] == str(sum(r["severity"] != "ok" for r in pairs))
    assert cards(at)["On-hand units"][0] == fmt.compact_units(sum(r["on_hand_qty"] for r in pairs))
    assert set(chart_data(at)[2]["category"]) == {"Dairy"}
    assert cards(at)["Revenue (PKR)"][0] == fmt.compact_units(sum(r["revenue"] for r in payloads["regional_fulfillment"]["rows"]))


def test_stale_snapshot_is_flagged(redis_client, settings, scbda_environ):
    fill(redis_client, settings, age_s=240)
    at = run_app()
    assert len(at.warning) == 1 and at.warning[0].value.startswith("Stale data: the KPIs cover data up to 4 min")
    assert at.metric  # the last numbers stay visible, flagged


def test_fresh_snapshot_has_no_stale_warning(redis_client, settings, scbda_environ):
    fill(redis_client, settings, age_s=60)
    at = run_app()
    assert not at.warning and any(t.startswith("Last updated 1 min") for t in texts(at))


def test_kpis_without_last_update_are_not_presented_as_fresh(redis_client, settings, scbda_environ):
    snapshots.write(redis_client, settings, snapshots.build(now()), last_update=None)
    at = run_app()
    assert "kpi:last\\_update is missing" in at.warning[0].value


def test_empty_redis_says_no_data_yet_not_healthy(redis_client, settings, scbda_environ):
    at = run_app()
    assert [i.value for i in at.info][0].startswith("No data yet")
    assert not at.metric and not at.get("vega_lite_chart")
    assert not any("healthy" in t.lower() or "all good" in t.lower() for t in texts(at))


def test_one_missing_kpi_shows_no_data_for_that_view_only(redis_client, settings, scbda_environ):
    fill(redis_client, settings)
    redis_client.delete(settings.redis_key("kpi:supplier_performance"))
    at = run_app()
    assert "No data yet for supplier performance." in [i.value for i in at.info]
    assert cards(at)["Lead time"][0] == "—"
    assert "on-time — · planned —" in [c.value for c in at.caption]
    assert cards(at)["On-hand units"][0] != "—"


def test_malformed_key_is_reported_without_a_traceback(redis_client, settings, scbda_environ):
    fill(redis_client, settings)
    redis_client.set(settings.redis_key("kpi:stockout_risk"), "{broken")
    at = run_app()
    assert any("malformed" in w.value and fmt.escape_markdown("kpi:stockout_risk") in w.value for w in at.warning)
    assert cards(at)["Stockout alerts"][0] == "—" and cards(at)["On-hand units"][0] != "—"


def test_unreachable_redis_is_a_plain_message(scbda_environ, monkeypatch):
    port = free_port()
    monkeypatch.setenv("SCBDA_REDIS_URL", f"redis://:secret@127.0.0.1:{port}/0")
    at = run_app()
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Redis is unreachable at " + fmt.escape_markdown(f"redis://:***@127.0.0.1:{port}/0"))
    assert "secret" not in message and "Traceback" not in message and "recovers by itself" in message
    assert not at.metric


def test_bad_configuration_is_one_line(scbda_environ, monkeypatch):
    monkeypatch.setenv("SCBDA_REDIS_URL", "http://nope")
    at = run_app()
    assert at.error[0].value.startswith("Configuration error: SCBDA\\_REDIS\\_URL")


def test_recovers_by_itself_when_redis_comes_back(scbda_environ, monkeypatch, tmp_path):
    env = {"SCBDA_HOME": str(tmp_path / "home"), "SCBDA_REDIS_PORT": str(free_port())}
    service = EmbeddedRedis(Settings.from_env(env))
    running, _ = service.ensure()
    monkeypatch.setenv("SCBDA_REDIS_URL", running.url)
    settings = Settings.from_env({**env, "SCBDA_REDIS_URL": running.url})
    import redis

    try:
        fill(redis.Redis.from_url(running.url), settings)
        at = run_app()
        assert cards(at)["On-hand units"][0] != "—"

        service.stop()
        run_app(at)
        assert at.error and at.error[0].value.startswith("Redis is unreachable") and not at.metric

        running, _ = service.ensure()
        fill(redis.Redis.from_url(running.url), settings)
        run_app(at)
        assert not at.error and cards(at)["On-hand units"][0] != "—"
    finally:
        service.stop()


def test_hostile_text_from_redis_is_never_markup(redis_client, settings, scbda_environ):
    fill(redis_client, settings, overrides={"DC-KHI": {"dc_name": HOSTILE_DC, "city": HOSTILE_DC},
                                            "SKU-DAIRY-001": {"product_name": HOSTILE_PRODUCT}})
    redis_client.set(settings.redis_key("kpi:regional_fulfillment"), json.dumps({
        **snapshots.build(now())["regional_fulfillment"], "as_of": "<b>not a time</b>"}))
    at = run_app()

    for text in texts(at):
        assert "<img" not in text and "<script" not in text and "<b>" not in text, text
    # data views show the text verbatim (as data), the Markdown table shows it escaped
    assert HOSTILE_PRODUCT in set(table(at, "Severity")["Product"])
    assert HOSTILE_DC in set(table(at, "DC")["Name"])  # st.dataframe shows text as data, never as Markdown
    assert HOSTILE_DC in set(chart_data(at)[0]["dc_name"])
    assert "DC-KHI · " + HOSTILE_DC in at.multiselect(key="filter_dc").options  # widget options are plain text


def test_quiet_windows_say_so_instead_of_drawing_empty_charts(redis_client, settings, scbda_environ):
    quiet = {"avg_planned_lead_time_days": None, "avg_actual_lead_time_days": None, "on_time_rate": None,
             "shipments_created": 0, "shipments_received": 0}
    fill(redis_client, settings, overrides={s: quiet for s in ("SUP-LOCAL-001", "SUP-LOCAL-002", "SUP-REGIONAL-001",
                                                               "SUP-IMPORT-001")})
    redis_client.xadd(settings.redis_key("kpi:history"), {"as_of": now().isoformat(), "total_on_hand": "5",
                                                          "avg_on_time_rate": ""})
    at = run_app()
    assert "No shipments created or received in the supplier window yet." in [i.value for i in at.info]
    assert cards(at)["Lead time"][0] == "—"
    assert "Supplier on-time rate: no values yet" in [c.value for c in at.caption]
    assert len(at.get("vega_lite_chart")) == 6  # 5 views (no supplier chart) + the trends
    assert set(table(at, "Supplier")["Note"]) == {"no receipt yet: lead time ~2 d", "no receipt yet: lead time ~4 d",
                                                  "no receipt yet: lead time ~7 d"}
