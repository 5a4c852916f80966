"""How numbers and text look on the dashboard: PKR amounts, percentages, units, ages, and escaped Redis text.

Plain functions with no Streamlit import, so tests call them directly. ``None`` (a null KPI) always shows as "—".
"""

from __future__ import annotations

import math
import re

MISSING = "—"

# Characters that Streamlit's Markdown renderer gives a meaning to (CommonMark punctuation plus the HTML ones,
# "$" for LaTeX and ":" for emoji shortcodes). Escaping all of them keeps Redis text literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&\"'=])")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pkr(value) -> str:
    """PKR amount, exact below 10,000, then compact: ``PKR 9,999``, ``PKR 12.3K``, ``PKR 4.56M``, ``PKR 1.20B``."""
    if not _is_number(value):
        return MISSING
    return f"PKR {_scaled(value)}"


def compact_units(value) -> str:
    """A count that fits a card: exact below 10,000, then ``12.3K``, ``878.7M`` (same scale as :func:`pkr`)."""
    if not _is_number(value):
        return MISSING
    return _scaled(value)


def _scaled(value: float) -> str:
    sign = "-" if value < 0 else ""
    amount = abs(value)
    for threshold, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "K")):
        if amount >= threshold:
            return f"{sign}{_compact(amount / unit)}{suffix}"
    return f"{sign}{amount:,.0f}"


def _compact(x: float) -> str:
    # three significant figures: 1.23, 12.3, 123
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def percent(fraction, digits: int = 1) -> str:
    """A 0–1 fraction as a percentage: ``0.9712`` → ``97.1 %``."""
    if not _is_number(fraction):
        return MISSING
    return f"{fraction * 100:.{digits}f} %"


def units(value) -> str:
    """A count of units with thousands separators: ``1234567`` → ``1,234,567``."""
    if not _is_number(value):
        return MISSING
    return f"{value:,.0f}"


def megabytes(value) -> str:
    """Bytes as MB (or GB from 10,000 MB): ``1_234_567`` → ``1.2 MB``."""
    if not _is_number(value):
        return MISSING
    mb = value / 1e6
    return f"{mb / 1e3:,.1f} GB" if mb >= 1e4 else f"{mb:,.1f} MB"


def days(value, digits: int = 1) -> str:
    if not _is_number(value):
        return MISSING
    return f"{value:.{digits}f} d"


def age(seconds) -> str:
    """A short human age: ``42 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if not _is_number(seconds):
        return MISSING
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    if total < 86400:
        return f"{total // 3600} h {total % 3600 // 60} min"
    return f"{total // 86400} d {total % 86400 // 3600} h"


def escape_markdown(text) -> str:
    """Redis text made literal for any Streamlit element that renders Markdown (labels, captions, messages)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
