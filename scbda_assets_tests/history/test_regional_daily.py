"""Hot + cold unified history: after archiving part of the orders, the numbers equal those computed from all data
before archival; an order in both stores counts once; the asset writes the Redis contract."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections import defaultdict
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from scbda_assets.archive.protocol import archive_range
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history.assets import REDIS_KEY, regional_daily_history
from scbda_assets.history.regional_daily import regional_daily, window
from scbda_assets.resources import build_resources
from scbda_assets_tests import documents

AS_OF = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)  # 17:30 in Karachi
PKT = ZoneInfo("Asia/Karachi")


def expected_from(docs: list[dict]) -> dict:
    dates, start, end = window(AS_OF)
    sums = defaultdict(lambda: [0, 0.0, 0, 0])
    seen = set()
    for doc in docs:
        if doc["order_ts"] < start or doc["order_ts"] >= end or doc["order_id"] in seen:
            continue
        seen.add(doc["order_id"])
        key = (doc["order_ts"].astimezone(PKT).date().isoformat(), doc["region_id"])
        s = sums[key]
        s[0] += 1
        s[1] += doc["order_value"]
        s[2] += doc["fulfilled_qty"]
        s[3] += doc["requested_qty"]
    return {k: (v[0], round(v[1], 2), round(v[2] / v[3], 6) if v[3] else None) for k, v in sums.items()}


def as_map(payload: dict) -> dict:
    return {(r["date"], r["region_id"]): (r["orders"], r["revenue"], r["fill_rate"])
            for r in payload["rows"] if r["orders"]}


@pytest.fixture
def nine_days(mongo_db):
    # From 9 days back (outside the 7-day window) up to as_of, across Karachi midnights.
    docs = documents.orders(AS_OF - dt.timedelta(days=9), AS_OF, 1500, seed=21)
    docs += documents.malformed_orders(AS_OF - dt.timedelta(days=2))  # skipped, as the KPIs skip them
    documents.insert_all(mongo_db, {"orders_fact": docs})
    return [d for d in docs if isinstance(d.get("order_id"), str) and "requested_qty" in d
            and isinstance(d["requested_qty"], int)]


def test_hot_plus_cold_equals_all_data_before_archival(mongo_db, spark, spark_settings, nine_days):
    store = ArchiveStore(spark_settings.archive_uri)
    before = regional_daily(spark, mongo_db, store, as_of=AS_OF)
    expected = expected_from(nine_days)
    assert as_map(before) == expected and sum(v[0] for v in expected.values()) > 500
    # Archive everything older than 4 days: the window now spans both stores.
    manifest = archive_range(mongo_db, spark, store, start=AS_OF - dt.timedelta(days=10),
                             end=AS_OF - dt.timedelta(days=4), now=AS_OF, safety_minutes=60)
    assert manifest["collections"]["orders_fact"]["record_count"] > 500
    # An order in both stores (as after a crash between verify and delete) must count once.
    archived = [d for d in nine_days if d["order_ts"] < AS_OF - dt.timedelta(days=4)][-5:]
    mongo_db.orders_fact.insert_many([{k: v for k, v in d.items() if k != "_id"} for d in archived])
    after = regional_daily(spark, mongo_db, store, as_of=AS_OF)
    assert as_map(after) == expected
    assert len(after["rows"]) == 7 * 4 and after["days"] == 7 and after["as_of"] == "2026-11-20T12:30:00Z"


def test_cold_read_prunes_partitions(mongo_db, spark, spark_settings, nine_days):
    from scbda_assets.history.regional_daily import cold_orders

    store = ArchiveStore(spark_settings.archive_uri)
    archive_range(mongo_db, spark, store, start=AS_OF - dt.timedelta(days=10), end=AS_OF - dt.timedelta(days=4),
                  now=AS_OF, safety_minutes=60)
    _, start, end = window(AS_OF)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        cold_orders(spark, store, start, end).explain()
    text = buffer.getvalue()
    assert "PartitionFilters: [isnotnull(event_date" in text and f"{start:%Y-%m-%d}" in text


def test_empty_stores_give_zero_rows_for_every_day_and_region(mongo_db, spark, spark_settings):
    payload = regional_daily(spark, mongo_db, ArchiveStore(spark_settings.archive_uri), as_of=AS_OF)
    assert len(payload["rows"]) == 28
    assert all(r["orders"] == 0 and r["revenue"] == 0.0 and r["fill_rate"] is None for r in payload["rows"])


def test_asset_writes_the_redis_contract(mongo_db, redis_client, spark_settings, nine_days):
    result = dg.materialize(
        [regional_daily_history],
        resources=build_resources(spark_settings),
        run_config={"ops": {"regional_daily_history": {"config": {"as_of": AS_OF.isoformat()}}}},
        tags={"scbda/stage": "history"},
    )
    assert result.success
    payload = json.loads(redis_client.get(spark_settings.redis_key(REDIS_KEY)))
    assert set(payload) == {"as_of", "days", "rows"} and payload["days"] == 7
    assert set(payload["rows"][0]) == {"date", "region_id", "region_name", "orders", "revenue", "fill_rate"}
    assert as_map(payload) == expected_from(nine_days)
    materialization = result.asset_materializations_for_node("regional_daily_history")[0]
    assert materialization.metadata["dagster/row_count"].value == 28


def test_archived_until_is_the_newest_cutoff_of_any_batch(mongo_db, spark, spark_settings, nine_days):
    """The split point: before it both stores may hold an order (read row by row, de-duplicated); from it on only
    MongoDB can (aggregated there). A pending batch counts: it may have published files already."""
    from scbda_assets.archive import manifest as mf
    from scbda_assets.history.regional_daily import archived_until

    store = ArchiveStore(spark_settings.archive_uri)
    assert archived_until(store) is None
    archive_range(mongo_db, spark, store, start=AS_OF - dt.timedelta(days=10), end=AS_OF - dt.timedelta(days=4),
                  now=AS_OF, safety_minutes=60)
    assert archived_until(store) == AS_OF - dt.timedelta(days=4)
    pending = mf.new_manifest("20261120T120000Z-0000abcd", created_at=AS_OF, start=AS_OF - dt.timedelta(days=4),
                              cutoff=AS_OF - dt.timedelta(days=3), collections=["orders_fact"])
    store.write_text_atomically("_manifests/20261120T120000Z-0000abcd.json", mf.dumps(pending))
    assert archived_until(store) == AS_OF - dt.timedelta(days=3)
