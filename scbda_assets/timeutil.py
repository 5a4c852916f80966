"""Time, one way everywhere: UTC datetimes, ISO 8601 text, and the minute/hour/day floors the pipeline cuts by.

Every stored time is a timezone-aware UTC datetime; a naive one is taken as UTC (BSON dates carry no zone).
Two ISO spellings exist on purpose, each in its own place:
``iso`` writes ``2026-11-20T10:00:00+00:00`` (Redis KPI payloads, run config, run keys); ``iso_z`` writes
``2026-11-20T10:00:00Z`` (manifests, the archive status, history payloads). ``parse_iso`` reads both.
"""

from __future__ import annotations

import datetime as dt

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    """The same instant in UTC; a naive datetime is taken as UTC; None stays None."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """``2026-11-20T10:00:00+00:00``."""
    return utc(moment).isoformat()


def iso_z(moment: dt.datetime | None) -> str | None:
    """``2026-11-20T10:00:00Z``; None stays None."""
    return None if moment is None else iso(moment).replace("+00:00", "Z")


def parse_iso(text: str | None) -> dt.datetime | None:
    """ISO 8601 text (``Z`` or an offset; none means UTC) as a UTC datetime; None or blank gives None.
    Raises ValueError, which callers turn into their one-line message."""
    if text is None or not text.strip():
        return None
    return utc(dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def floor_minute(moment: dt.datetime) -> dt.datetime:
    return utc(moment).replace(second=0, microsecond=0)


def ceil_minute(moment: dt.datetime) -> dt.datetime:
    floor = floor_minute(moment)
    return floor if floor == moment else floor + MINUTE


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def floor_day(moment: dt.datetime) -> dt.datetime:
    return utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def hours_touching(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The start of every hour that [start, end) touches."""
    hour, hours = floor_hour(start), []
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours
