"""The history layer's asset check: stored hours equal a recomputation from the raw events."""

import datetime as dt

import dagster as dg

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history.verify import verify_recent_hours
from scbda_assets.resources import MongoResource, SettingsResource


@dg.asset_check(asset="orders_hourly", name="orders_hourly_match_raw_events",
                description="The stored sums of the last complete hours equal a recomputation from the raw events "
                "of both stores (hot ∪ cold, de-duplicated).")
def orders_hourly_match_raw_events(mongo: MongoResource, settings: SettingsResource) -> dg.AssetCheckResult:
    db = mongo.database()
    report = verify_recent_hours(db, ArchiveStore(settings.get().archive_uri), now=dt.datetime.now(dt.UTC))
    return dg.AssetCheckResult(passed=not report["mismatched"], metadata={
        "hours_checked": report["checked"], "mismatched_hours": ", ".join(report["mismatched"]) or "none"})
