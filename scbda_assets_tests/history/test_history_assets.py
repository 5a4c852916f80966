"""The history assets: an hourly partition rebuilds its hour from MongoDB; the check compares with the raw events
and fails when a stored hour disagrees. (The asset and check read the wall clock, so the data is placed around it.)"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.archive.layout import partition_key
from scbda_assets.history.assets import history_hourly
from scbda_assets.history.checks import orders_hourly_match_raw_events
from scbda_assets.history.store import ORDERS_HOURLY, history_database
from scbda_assets.history.verify import verify_recent_hours
from scbda_assets.resources import build_resources
from scbda_assets_tests.documents import order, shipment


def test_a_partition_rebuilds_its_hour_and_the_check_compares_with_raw_events(chain_db, settings):
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    chain_db.orders_fact.insert_many([order(f"o{i}", "SKU-STAPLE-001", "DC-KHI", hour + dt.timedelta(minutes=i),
                                            requested=i + 1) for i in range(5)])
    chain_db.shipments_fact.insert_one(shipment("sh1", "SUP-LOCAL-001", hour + dt.timedelta(minutes=7)))
    resources = build_resources(settings)
    result = dg.materialize([history_hourly, orders_hourly_match_raw_events], partition_key=partition_key(hour),
                            resources=resources)
    assert result.success
    (row,) = history_database(chain_db)[ORDERS_HOURLY].find({})
    assert (row["orders"], row["units_requested"]) == (5, 15)
    assert history_database(chain_db).shipments.count_documents({}) == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["hours_checked"].value == 1

    history_database(chain_db)[ORDERS_HOURLY].update_one({}, {"$inc": {"orders": 1}})  # a wrong stored hour
    report = verify_recent_hours(chain_db, None, now=hour + dt.timedelta(hours=3))
    assert report == {"checked": 1, "mismatched": [f"{hour:%Y-%m-%dT%H}"]}
