"""Sizing the hot store for the archival policy: eligible documents and BSON bytes per hour, at a cost the sensor can
pay every minute; ``decide`` reads MongoDB's size and the hours, then applies the pure policy (``policy.py``).
Shared by the sensor and the CLI.
"""

from __future__ import annotations

import datetime as dt

from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo.database import Database

from scbda_assets.archive.eligibility import dateless_conditions, eligibility_filter, hour_expression
from scbda_assets.archive.policy import HourStats, Plan, merge_hours, plan_archive, safety_horizon
from scbda_assets.archive.schema import SPECS, CollectionSpec
from scbda_assets.settings import Settings
from scbda_assets.timeutil import HOUR, floor_hour


def eligible_hour_pipeline(spec: CollectionSpec, horizon: dt.datetime, *, dateless_only: bool = False) -> list[dict]:
    """Per hour before the horizon: eligible documents and their exact BSON bytes (``$bsonSize``, read per document).

    Used where documents are few: shipments (the in-transit condition needs each document) and the documents
    without a date as event time (``dateless_only``). Every branch of the ``$or`` is served by the event-time index
    (``{$not: {$type: "date"}}`` would scan it all)."""
    branches = dateless_conditions(spec) if dateless_only else [{spec.event_field: {"$lt": horizon}},
                                                                 *dateless_conditions(spec)]
    return [
        {"$match": {"$or": branches, **eligibility_filter(spec, horizon)}},
        {"$project": {"t": {"$dateTrunc": {"date": hour_expression(spec), "unit": "hour"}},
                      "size": {"$bsonSize": "$$ROOT"}}},
        {"$match": {"t": {"$ne": None, "$lt": horizon}}},
        {"$group": {"_id": "$t", "documents": {"$sum": 1}, "bytes": {"$sum": "$size"}}},
        {"$sort": {"_id": 1}},
    ]


def eligible_hour_stats(db: Database, spec: CollectionSpec, horizon: dt.datetime) -> list[HourStats]:
    """The planning input: eligible documents and BSON bytes per hour before the horizon, at a cost that stays
    small however large the hot store is (the sensor asks every minute, within Dagster's 60 s tick limit).

    Orders and inventory: documents per hour are index counts (``COUNT_SCAN``, no document read) and bytes are
    counts × the collection's ``avgObjSize`` — an estimate, which is all the low-water arithmetic needs; the
    manifest's ``source_bytes`` are exact. Sizing 10 M documents with ``$bsonSize`` took over 60 s at 100× the
    default rate, so the sensor timed out every tick and never archived. Shipments (few, and the in-transit
    condition needs each document) and dateless documents (rare) are sized exactly.
    """
    collection = db[spec.collection]

    def exact(pipeline: list[dict]) -> list[HourStats]:
        return [HourStats(row["_id"].astimezone(dt.UTC), row["documents"], row["bytes"])
                for row in collection.with_options(codec_options=_CLAMPED).aggregate(pipeline, allowDiskUse=True)]

    if eligibility_filter(spec, horizon):
        return exact(eligible_hour_pipeline(spec, horizon))
    counted: list[HourStats] = []
    hours = occupied_hours(collection, spec, horizon)
    if hours:
        average = int(db.command("collStats", spec.collection).get("avgObjSize", 0))
        for hour in hours:
            documents = collection.count_documents({spec.event_field: {"$gte": hour, "$lt": hour + HOUR}})
            counted.append(HourStats(hour, documents, documents * average))
    return merge_hours([counted, exact(eligible_hour_pipeline(spec, horizon, dateless_only=True))])


# Dates outside what Python can hold (year 0, year 10000+) are clamped when read, so they never crash a tick.
_CLAMPED = CodecOptions(tz_aware=True, tzinfo=dt.UTC, datetime_conversion=DatetimeConversion.DATETIME_CLAMP)


def occupied_hours(collection, spec: CollectionSpec, horizon: dt.datetime, limit: int = 100_000) -> list[dt.datetime]:
    """The hours before the horizon that hold at least one document with a date event time, oldest first: one index
    seek per occupied hour (the next event time at or after the previous hour's end), never a walk over every hour
    since the oldest document (one document from 1970 costs one seek, not 500 000 counts)."""
    clamped = collection.with_options(codec_options=_CLAMPED)
    hours: list[dt.datetime] = []
    bound: dict = {"$lt": horizon}
    while len(hours) < limit:
        row = clamped.find_one({spec.event_field: {**bound, "$type": "date"}}, {spec.event_field: 1, "_id": 0},
                               sort=[(spec.event_field, 1)])
        if row is None:
            break
        hour = floor_hour(row[spec.event_field])
        hours.append(hour)
        try:
            bound = {"$gte": hour + HOUR, "$lt": horizon}
        except OverflowError:  # the last representable hour
            break
    return hours


def decide(db: Database, settings: Settings, now: dt.datetime) -> Plan:
    data_size = int(db.command("dbStats")["dataSize"])
    horizon = safety_horizon(now, settings.archive_safety_minutes)
    hours: list[HourStats] = []
    if data_size > settings.archive_threshold_mb * 1024 * 1024:  # only pay for the hour sizing when it matters
        hours = merge_hours([eligible_hour_stats(db, spec, horizon) for spec in SPECS])
    return plan_archive(data_size=data_size, hours=hours, threshold_mb=settings.archive_threshold_mb,
                        low_water=settings.archive_low_water, horizon=horizon)
