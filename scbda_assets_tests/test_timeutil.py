"""The one time module: both ISO spellings, the parser that reads them, and the floors (pure, no services)."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.timeutil import (ceil_hour, ceil_minute, floor_day, floor_hour, floor_minute, iso, iso_z, parse_iso,
                                   utc)

KARACHI = dt.timezone(dt.timedelta(hours=5))
MOMENT = dt.datetime(2026, 11, 20, 15, 42, 7, 123000, tzinfo=KARACHI)  # 10:42:07.123 UTC


def test_both_spellings_are_utc_and_read_back():
    assert iso(MOMENT) == "2026-11-20T10:42:07.123000+00:00"
    assert iso_z(MOMENT) == "2026-11-20T10:42:07.123000Z" and iso_z(None) is None
    for text in (iso(MOMENT), iso_z(MOMENT), "2026-11-20T15:42:07.123+05:00", " 2026-11-20T10:42:07.123 "):
        assert parse_iso(text) == MOMENT and parse_iso(text).tzinfo == dt.UTC, text
    assert parse_iso(None) is None and parse_iso("  ") is None
    with pytest.raises(ValueError):
        parse_iso("yesterday")


def test_floors_and_ceilings_cut_in_utc():
    assert floor_minute(MOMENT) == dt.datetime(2026, 11, 20, 10, 42, tzinfo=dt.UTC)
    assert ceil_minute(MOMENT) == dt.datetime(2026, 11, 20, 10, 43, tzinfo=dt.UTC)
    assert floor_hour(MOMENT) == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    assert ceil_hour(MOMENT) == dt.datetime(2026, 11, 20, 11, tzinfo=dt.UTC)
    assert floor_day(MOMENT) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    whole = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    assert ceil_hour(whole) == whole and ceil_minute(whole) == whole
    assert floor_minute(dt.datetime(2026, 11, 20, 10, 5, 30)) == dt.datetime(2026, 11, 20, 10, 5, tzinfo=dt.UTC)
    assert utc(None) is None
