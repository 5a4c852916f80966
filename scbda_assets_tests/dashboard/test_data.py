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
    snapshots.write_regional_daily(redis_client, settings, NOW)

    snap = data.read_snapshot(redis_client, settings, now=NOW + dt.timedelta(seconds=5))

    assert set(snap.kpis) == set(data.KPI_NAMES) and not snap.malformed
    assert snap.last_update == NOW
    assert len(snap.kpis["inventory_level"].rows) == 50
    assert snap.kpis["stockout_risk"].alert_count == payloads["stockout_risk"]["alert_count"]
    assert snap.kpis["supplier_performance"].window_minutes == 30
    assert len(snap.history) == 30 and snap.history["as_of"].is_monotonic_increasing
    assert snap.history["fill_rate"].isna().sum() == 1  # "" in the stream is a null, not zero
    assert len(snap.regional_daily.rows) == 28
    assert data.age_seconds(snap) == 5 and not data.is_stale(snap)


def test_headline_matches_the_rows(redis_client, settings):
    payloads = snapshots.build(NOW)
    snapshots.write(redis_client, settings, payloads, NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW)

    h = data.headline(snap)

    assert h.total_on_hand == sum(r["on_hand_qty"] for r in payloads["inventory_level"]["rows"])
    assert h.stockout_alerts == payloads["stockout_risk"]["alert_count"] > 0
    suppliers = payloads["supplier_performance"]["rows"]
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


@pytest.mark.parametrize(("age", "stale"), [(0, False), (89, False), (90, False), (91, True), (3600, True)])
def test_stale_after_90_seconds(redis_client, settings, age, stale):
    snapshots.write(redis_client, settings, snapshots.build(NOW), NOW)
    snap = data.read_snapshot(redis_client, settings, now=NOW + dt.timedelta(seconds=age))
    assert data.is_stale(snap) is stale


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
