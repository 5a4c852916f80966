"""The policy applied to a live MongoDB: read its size and eligible hours, then plan (shared by sensor and CLI)."""

from __future__ import annotations

import datetime as dt

from pymongo.database import Database

from scbda_assets.archive.planning import HourStats, Plan, merge_hours, plan_archive, safety_horizon
from scbda_assets.archive.schema import SPECS
from scbda_assets.archive.selection import eligible_hour_stats
from scbda_assets.settings import Settings


def decide(db: Database, settings: Settings, now: dt.datetime) -> Plan:
    data_size = int(db.command("dbStats")["dataSize"])
    horizon = safety_horizon(now, settings.archive_safety_minutes)
    hours: list[HourStats] = []
    if data_size > settings.archive_threshold_mb * 1024 * 1024:  # only pay for the hour sizing when it matters
        hours = merge_hours([eligible_hour_stats(db, spec, horizon) for spec in SPECS])
    return plan_archive(data_size=data_size, hours=hours, threshold_mb=settings.archive_threshold_mb,
                        low_water=settings.archive_low_water, horizon=horizon)
