"""Reading and decoding the Redis snapshot, filters, card numbers and freshness — against the suite's real Redis."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dashboard import data
from scbda_assets.settings import Settings
from scbda_assets_tests.dashboard import snapshots

NOW = dt.datetime(2026, 11, 22, 10, 0, 30, tzinfo=dt.UTC)


def test_contract_snapshot_decodes_every_key(redis_client, settings):
    payloads = snapshots.build(NOW)
    snapshots.write(redis_client, settings, payloads, NOW)
    snapshots.write_history(redis_client, settings, NOW, runs=30)
    daily = snapshots.write_daily(redis_client, settings, NOW)
    archive = snapshots.write_archive_status(redis_client, settings, NOW)

    snap = data.read_snapshot(redis_client, settings, now=NOW + dt.timedelta(seconds=5))

    assert set(snap.kpis) == set(data.KPI_NAMES) and not snap.malformed
    assert snap.last_update == NOW
    assert len(snap.kpis["inventory_level"].rows) == 50
    assert snap.kpis["stockout_risk"].alert_count == payloads["stockout_risk"]["alert_count"]
    assert snap.kpis["supplier_performance"].history_days == 30 and snap.data_until == NOW
    risk = snap.kpis["stockout_risk"].rows
    assert risk["stockout_probability"].notna().all() and risk["next_receipt_ts"].str.len().gt(0).any()
    assert snap.kpis["dc_utilization"].rows["inbound_m3"].notna().all()
    # the DC rows carry no geography: the map's coordinates and the region filter come from the reference data
    assert snap.kpis["dc_utilization"].rows.set_index("dc_id").loc["DC-KHI", ["region_id", "latitude"]].tolist() == [
        "PK-SINDH", 24.86]
    assert len(snap.daily.regions) == len(daily["regions"]) == 120 and len(snap.daily.suppliers) == 120
    assert list(snap.archive.collections["collection"]) == list(archive["collections"])
    assert snap.archive.last_runs["mb_per_s"].tolist() == [6.4, 6.4] and snap.archive.incomplete_batches == ()
    assert len(snap.history) == 30 and snap.history["as_of"].is_monotonic_increasing
    assert snap.history["fill_rate"].isna().sum() == 1  # "" in the stream is a null, not zero
    assert data.age_seconds(snap) == 5 and not data.is_stale(snap)


def test_headline_matches_the_rows(redis_client, settings):
    payloads = snapshots.build(NOW)
    snapshots.write(redis_client, settings, payloads, NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW)

    h = data.headline(snap)

    assert h.total_on_hand == sum(r["on_hand_qty"] for r in payloads["inventory_level"]["rows"])
    assert h.stockout_alerts == payloads["stockout_risk"]["alert_count"] > 0
    suppliers = [r for r in payloads["supplier_performance"]["rows"] if r["shipments_received"]]
    received = sum(r["shipments_received"] for r in suppliers)
    assert h.on_time_rate == pytest.approx(sum(r["on_time_rate"] * r["shipments_received"] for r in suppliers) / received)
    assert h.avg_utilization == pytest.approx(sum(r["utilization"] for r in payloads["dc_utilization"]["rows"]) / 5)
    regions = payloads["regional_fulfillment"]["rows"]
    assert h.revenue == pytest.approx(sum(r["revenue"] for r in regions))
    assert h.fill_rate == pytest.approx(sum(r["units_fulfilled"] for r in regions) / sum(r["units_requested"] for r in regions))
    assert h.window_minutes == 15


def test_filters_apply_to_the_tables_that_have_the_column(redis_client, settings):
    payloads = snapshots.build(NOW)
    snapshots.write(redis_client, settings, payloads, NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW)
    sindh = data.Filters(regions=("PK-SINDH",))

    h = data.headline(snap, sindh)

    assert h.total_on_hand == sum(r["on_hand_qty"] for r in payloads["inventory_level"]["rows"] if r["dc_id"] == "DC-KHI")
    assert h.avg_utilization == pytest.approx(0.62)  # DC-KHI only
    assert h.revenue == pytest.approx(next(r["revenue"] for r in payloads["regional_fulfillment"]["rows"]
                                           if r["region_id"] == "PK-SINDH"))
    assert h.on_time_rate == data.headline(snap).on_time_rate  # suppliers have no region
    only_milk = data.Filters(categories=("Dairy",), skus=("SKU-DAIRY-001",), dcs=("DC-LHE", "DC-ISB"))
    risk = data.rows(snap, "stockout_risk", only_milk)
    assert sorted(risk["dc_id"]) == ["DC-ISB", "DC-LHE"] and set(risk["sku_id"]) == {"SKU-DAIRY-001"}
    assert only_milk.applies_to(snap.kpis["regional_fulfillment"].rows) == []
    nothing = data.Filters(categories=("Dairy",), skus=("SKU-STAPLE-001",))
    assert data.rows(snap, "inventory_level", nothing).empty
    assert data.headline(snap, nothing).total_on_hand == 0


def test_missing_keys_are_none_never_zero_and_empty_redis_is_empty(redis_client, settings):
    snap = data.read_snapshot(redis_client, settings, now=NOW)
    assert snap.empty and not data.is_stale(snap) and data.age_seconds(snap) is None
    h = data.headline(snap)
    assert all(getattr(h, field) is None for field in ("total_on_hand", "stockout_alerts", "avg_utilization",
                                                       "revenue", "fill_rate", "on_time_rate"))
    payloads = snapshots.build(NOW)
    redis_client.set(settings.redis_key("kpi:dc_utilization"), json.dumps(payloads["dc_utilization"]))
    partial = data.read_snapshot(redis_client, settings, now=NOW)
    assert not partial.empty and data.headline(partial).total_on_hand is None
    assert data.is_stale(partial)  # KPI data but no completion time: not presented as fresh


@pytest.mark.parametrize(("age", "stale"), [(0, False), (179, False), (180, False), (181, True), (3600, True)])
def test_stale_after_three_minutes_of_data(redis_client, settings, age, stale):
    snapshots.write(redis_client, settings, snapshots.build(NOW), NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW + dt.timedelta(seconds=age))
    assert data.is_stale(snap) is stale


def test_staleness_is_measured_from_data_until_not_the_run(redis_client, settings):
    payloads = snapshots.build(NOW)
    for payload in payloads.values():  # the runs go on, but the generator stopped 10 minutes ago
        payload["data_until"] = snapshots.iso(NOW - dt.timedelta(minutes=10))
    snapshots.write(redis_client, settings, payloads, NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW + dt.timedelta(seconds=5))
    assert data.age_seconds(snap) == 5 and data.data_age_seconds(snap) == 605 and data.is_stale(snap)


def test_previous_period_comes_from_the_run_one_window_earlier(redis_client, settings):
    snapshots.write(redis_client, settings, snapshots.build(NOW), NOW)
    for minutes, on_hand in ((16, "900"), (15, "1000"), (14, "1100"), (1, "5")):
        redis_client.xadd(settings.redis_key("kpi:history"), {
            "as_of": snapshots.iso(NOW - dt.timedelta(minutes=minutes)), "total_on_hand": on_hand, "revenue": "",
            "avg_on_time_rate": "0.9" if minutes == 16 else ""})
    snap = data.read_snapshot(redis_client, settings, now=NOW)
    before, period = data.previous_period(snap)
    assert period == "15 min" and before["total_on_hand"] == 1000.0
    assert before["revenue"] is None  # no value in the history: no change shown, never "against zero"
    assert before["on_time_rate"] is None  # the supplier card compares with 24 h earlier, not in this history
    assert data.previous_period(snap, data.Filters(regions=("PK-SINDH",)))[0]["total_on_hand"] is None


def test_daily_totals_over_regions_and_suppliers():
    daily = data.DailyHistory(
        as_of=NOW,
        regions=data.rows_frame(data.DAILY_REGIONS, [
            {"date": "2026-11-20", "region_id": "PK-SINDH", "orders": 10, "revenue": 100.0, "lost_revenue": 5.0,
             "units_requested": 100, "units_fulfilled": 90},
            {"date": "2026-11-20", "region_id": "PK-CAPITAL", "orders": 5, "revenue": 50.0, "lost_revenue": 0.0,
             "units_requested": 50, "units_fulfilled": 50},
            {"date": "2026-11-21", "region_id": "PK-SINDH", "orders": 1, "revenue": 1.0, "lost_revenue": 0.0,
             "units_requested": 0, "units_fulfilled": 0},
            {"date": "2026-11-10", "region_id": "PK-SINDH", "orders": 7, "revenue": 7.0, "lost_revenue": 0.0,
             "units_requested": 7, "units_fulfilled": 7}]),
        suppliers=data.rows_frame(data.DAILY_SUPPLIERS, [
            {"date": "2026-11-21", "supplier_id": "A", "shipments_received": 3, "on_time_rate": 1.0,
             "avg_actual_lead_time_days": 2.0},
            {"date": "2026-11-21", "supplier_id": "B", "shipments_received": 1, "on_time_rate": 0.0,
             "avg_actual_lead_time_days": 6.0},
            {"date": "2026-11-21", "supplier_id": "C", "shipments_received": 0}]))
    week = data.daily_regions(daily, 7, today=dt.date(2026, 11, 22))
    assert week["orders"].tolist() == [15, 1] and week["revenue"].tolist() == [150.0, 1.0]
    assert week["fill_rate"].iloc[0] == pytest.approx(140 / 150) and week["fill_rate"].isna().iloc[1]
    assert len(data.daily_regions(daily, 30, today=dt.date(2026, 11, 22))) == 3
    sindh = data.daily_regions(daily, 7, data.Filters(regions=("PK-SINDH",)), today=dt.date(2026, 11, 22))
    assert sindh["orders"].tolist() == [10, 1]
    suppliers = data.daily_suppliers(daily, 7, today=dt.date(2026, 11, 22))
    assert suppliers["shipments_received"].tolist() == [4]
    assert suppliers["on_time_rate"].iloc[0] == pytest.approx(0.75)
    assert suppliers["avg_actual_lead_time_days"].iloc[0] == pytest.approx(3.0)


@pytest.mark.parametrize("value", ['{"as_of": "x"}', '[1, 2]', '{broken', '{"regions": "nope", "suppliers": 3}'])
def test_daily_history_that_cannot_be_read_is_named_not_drawn(redis_client, settings, value):
    snapshots.write(redis_client, settings, snapshots.build(NOW), NOW)
    redis_client.set(settings.redis_key("history:daily"), value)
    snap = data.read_snapshot(redis_client, settings, now=NOW)
    assert snap.daily is None and snap.malformed == ("history:daily",)


def test_archive_status_is_decoded_tolerantly(redis_client, settings):
    redis_client.set(settings.redis_key("archive:status"), json.dumps({
        "collections": {"orders_fact": {"documents": "many", "source_bytes": 10, "oldest_event_ts": "not a time"},
                        "shipments_fact": None},
        "last_runs": [{"started_at": "2026-11-22T09:00:00+00:00", "duration_s": 2, "mb_per_s": 4.5}, "junk"],
        "incomplete_batches": [{"batch_id": "b-1"}, "b-2"]}))
    status = data.read_snapshot(redis_client, settings, now=NOW).archive
    assert status.collections["collection"].tolist() == ["orders_fact", "shipments_fact"]
    assert status.collections["documents"].isna().all() and status.collections["oldest_event"].tolist() == ["", ""]
    assert status.last_runs["started_at"].tolist() == ["2026-11-22 09:00 UTC"]
    assert status.incomplete_batches == ("b-1", "b-2")
    redis_client.set(settings.redis_key("archive:status"), "[]")
    assert data.read_snapshot(redis_client, settings, now=NOW).malformed == ("archive:status",)


def test_supplier_scorecard_says_why_there_is_no_receipt():
    frame = data.rows_frame("supplier_performance", [
        {"supplier_id": "SUP-IMPORT-001", "supplier_name": "Global", "shipments_created": 3, "shipments_received": 0,
         "avg_planned_lead_time_days": 6.6, "in_transit": 3},
        {"supplier_id": "SUP-REGIONAL-001", "supplier_name": "Oil", "shipments_created": 0, "shipments_received": 0,
         "in_transit": 0},
        {"supplier_id": "SUP-LOCAL-001", "supplier_name": "National", "shipments_created": 4,
         "shipments_received": 2, "on_time_rate": 1.0}])
    notes = dict(zip(data.supplier_scorecard(frame)["supplier_id"], data.supplier_scorecard(frame)["note"]))
    assert notes == {"SUP-IMPORT-001": "no receipt yet: lead time ~7 d", "SUP-REGIONAL-001": "no shipment in the window",
                     "SUP-LOCAL-001": ""}


def test_malformed_values_are_named_and_skipped(redis_client, settings):
    payloads = snapshots.build(NOW)
    payloads["inventory_level"]["rows"][0]["on_hand_qty"] = "lots"
    del payloads["inventory_level"]["rows"][1]["category"]
    payloads["inventory_level"]["rows"].append("not a row")
    snapshots.write(redis_client, settings, payloads, NOW)
    redis_client.set(settings.redis_key("kpi:stockout_risk"), b"{not json")
    redis_client.set(settings.redis_key("kpi:dc_utilization"), json.dumps({"as_of": "x", "rows": "nope"}))
    redis_client.set(settings.redis_key("kpi:last_update"), "yesterday-ish")
    redis_client.xadd(settings.redis_key("kpi:history"), {"as_of": "garbage", "revenue": "1"})

    snap = data.read_snapshot(redis_client, settings, now=NOW)

    assert set(snap.malformed) == {"kpi:stockout_risk", "kpi:dc_utilization", "kpi:last_update"}
    inventory = snap.kpis["inventory_level"].rows
    assert len(inventory) == 50  # the non-dict row is dropped, the others kept
    assert inventory["on_hand_qty"].isna().sum() == 1 and inventory.loc[1, "category"] == ""
    assert snap.history.empty
    assert data.headline(snap).stockout_alerts is None


def test_key_prefix_is_honoured(redis_client, test_env):
    prefixed = Settings.from_env({**test_env, "SCBDA_KEY_PREFIX": "blue:"})
    snapshots.write(redis_client, prefixed, snapshots.build(NOW), NOW)
    assert data.read_snapshot(redis_client, prefixed, now=NOW).kpis
    assert data.read_snapshot(redis_client, Settings.from_env(test_env), now=NOW).empty
    assert all(key.startswith("blue:") for key in data.snapshot_keys(prefixed))


def test_filter_options_and_stockout_order(redis_client, settings):
    snapshots.write(redis_client, settings, snapshots.build(NOW), NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW)
    options = data.filter_options(snap)
    assert options.regions["PK-SINDH"] == "Sindh Province" and len(options.regions) == 4
    assert options.dcs["DC-KHI"] == "Karachi Central Warehouse" and options.dc_region["DC-MUL"] == "PK-PUNJAB-SOUTH"
    assert options.categories == ["Beverages", "Cleaning", "Dairy", "Snacks", "Staples"]
    assert len(options.skus) == 10 and options.sku_category["SKU-BEV-001"] == "Beverages"
    table = data.stockout_table(snap.kpis["stockout_risk"].rows)
    ranks = table["severity"].map(data.SEVERITY_ORDER).tolist()
    assert ranks == sorted(ranks) and ranks[0] == 0
    critical = table[table["severity"] == "critical"]["days_to_stockout"].tolist()
    assert critical == sorted(critical)


def test_redis_url_prefers_the_explicit_url_and_never_starts_redis(test_env, tmp_path):
    assert data.redis_url(Settings.from_env(test_env)) == test_env["SCBDA_REDIS_URL"]
    embedded = {k: v for k, v in test_env.items() if k != "SCBDA_REDIS_URL"}
    embedded["SCBDA_HOME"] = str(tmp_path / "no_services_here")
    assert data.redis_url(Settings.from_env(embedded)) is None
    assert not (tmp_path / "no_services_here" / "services").exists() or not any(
        (tmp_path / "no_services_here" / "services").rglob("*.pid"))


def test_history_cache_reads_only_new_entries_and_starts_over_after_a_reset(redis_client, settings):
    stream = settings.redis_key("kpi:history")
    snapshots.write_history(redis_client, settings, NOW, runs=10)
    cache = data.HistoryCache()

    first = data.read_snapshot(redis_client, settings, now=NOW, history=cache)
    assert len(first.history) == 10
    newest = redis_client.xrevrange(stream, count=1)[0][0]
    assert cache.last_id == newest
    assert data.read_raw(redis_client, settings, since=cache.last_id)[-1] == []  # nothing new: nothing read

    redis_client.xadd(stream, {"as_of": (NOW + dt.timedelta(minutes=1)).isoformat(), "total_on_hand": "7"})
    second = data.read_snapshot(redis_client, settings, now=NOW, history=cache)
    assert len(second.history) == 11 and second.history["total_on_hand"].iloc[-1] == 7
    assert second.history["as_of"].is_monotonic_increasing

    redis_client.delete(stream)  # flushed / recreated: the cached runs must not survive
    snapshots.write_history(redis_client, settings, NOW + dt.timedelta(hours=1), runs=3)
    third = data.read_snapshot(redis_client, settings, now=NOW, history=cache)
    assert len(third.history) == 3 and third.history["as_of"].min() > NOW

    redis_client.delete(stream)
    assert data.read_snapshot(redis_client, settings, now=NOW, history=cache).history.empty


def test_history_cache_keeps_at_most_its_limit(redis_client, settings):
    snapshots.write_history(redis_client, settings, NOW, runs=8)
    cache = data.HistoryCache(limit=5)
    assert len(data.read_snapshot(redis_client, settings, now=NOW, history=cache).history) == 5
    snapshots.write_history(redis_client, settings, NOW + dt.timedelta(hours=1), runs=2)
    history = data.read_snapshot(redis_client, settings, now=NOW, history=cache).history
    assert len(history) == 5 and history["as_of"].iloc[-1] == NOW + dt.timedelta(hours=1, minutes=-1)


def test_thin_keeps_the_newest_run_and_at_most_the_limit():
    history = data._history([])
    assert data.thin(history).empty
    import pandas as pd

    runs = pd.DataFrame({"as_of": pd.date_range("2026-11-22", periods=1440, freq="min", tz="UTC"),
                         "revenue": range(1440)})
    thinned = data.thin(runs)
    assert len(thinned) <= 288 and thinned["revenue"].iloc[-1] == 1439
    assert thinned["as_of"].is_monotonic_increasing
    assert data.thin(runs.head(100)).equals(runs.head(100))
