"""Pure formatting: PKR (never "$"), percentages, ages, and Markdown escaping of Redis text."""

from __future__ import annotations

import math

import pytest

from dashboard import formatting as fmt


@pytest.mark.parametrize(("value", "expected"), [
    (0, "PKR 0"), (850, "PKR 850"), (9999.4, "PKR 9,999"), (12_345, "PKR 12.3K"), (1_234_567, "PKR 1.23M"),
    (45_600_000, "PKR 45.6M"), (987_000_000, "PKR 987M"), (2_500_000_000, "PKR 2.50B"), (-15_000, "PKR -15.0K"),
])
def test_pkr_is_compact_and_never_dollars(value, expected):
    assert fmt.pkr(value) == expected
    assert "$" not in fmt.pkr(value)


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, "12", True])
def test_missing_or_non_numeric_values_show_a_dash_not_zero(missing):
    for function in (fmt.pkr, fmt.percent, fmt.units, fmt.days, fmt.age):
        assert function(missing) == fmt.MISSING


def test_percent_units_days():
    assert fmt.percent(0.97123) == "97.1 %"
    assert fmt.percent(1) == "100.0 %"
    assert fmt.percent(0.5, digits=0) == "50 %"
    assert fmt.units(1234567.4) == "1,234,567"
    assert fmt.days(2.345) == "2.3 d"


@pytest.mark.parametrize(("seconds", "expected"), [
    (-3, "0 s"), (0, "0 s"), (42.9, "42 s"), (90, "1 min 30 s"), (3 * 3600 + 4 * 60, "3 h 4 min"),
    (2 * 86400 + 3600, "2 d 1 h"),
])
def test_age(seconds, expected):
    assert fmt.age(seconds) == expected


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>", "**bold** _it_ `code`", "[click](javascript:alert(1))", "$x^2$ :smile:",
    "# heading", "a|b", "<img src=x onerror=alert(1)>",
])
def test_escape_markdown_leaves_no_active_markup(hostile):
    escaped = fmt.escape_markdown(hostile)
    # every special character is preceded by a backslash, so Markdown shows it literally
    for index, char in enumerate(escaped):
        if char in "<>*_`[]()$:#|":
            assert escaped[index - 1] == "\\", (hostile, escaped)
    assert escaped.replace("\\", "") == hostile.replace("\\", "")


def test_escape_markdown_flattens_newlines():
    assert "\n" not in fmt.escape_markdown("line one\n# line two")


def test_compact_units_fit_a_card():
    assert fmt.compact_units(9_999) == "9,999"
    assert fmt.compact_units(12_345) == "12.3K"
    assert fmt.compact_units(878_691_234) == "879M"
    assert fmt.compact_units(4_560_000) == "4.56M"
    assert fmt.compact_units(None) == fmt.MISSING
