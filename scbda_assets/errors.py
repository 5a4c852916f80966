"""Plain errors of the pure code and their one-line text. No Dagster here: the wiring (``failures.py``) turns them
into ``dg.Failure``, the CLI into an exit code."""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A configured service cannot be reached. ``str(error)`` is the one line shown to the user."""


def first_line(exc: BaseException) -> str:
    """The cause, without the driver's appendix (pymongo adds timeouts and a topology dump)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return lines[0].split(" (configured timeouts")[0].split(", Timeout:")[0][:200]
