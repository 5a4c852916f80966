"""A pytest plugin (loaded by ``addopts``): ``--shift-clock-days N`` runs the suite with the wall clock N days away.

It proves that no test depends on today's date: a test that pins a date and lets the code under test read the wall
clock behaves differently once the clock moves (``make test-date-shift`` runs the suite a year ahead). The shift
uses time-machine, so it moves ``datetime.now``, ``time.time`` and friends in the test process (and in-process
Dagster runs), not in the servers or subprocesses. A test whose subprocesses read the clock too (a real `scbda
archive` it kills, a whole `scbda run`, ids that mongod stamps) is marked ``subprocess_clock`` and runs on the real
clock under the shift, since its children and servers cannot be moved with it.
"""

from __future__ import annotations

import datetime as dt

import pytest


def pytest_addoption(parser):
    parser.addoption("--shift-clock-days", type=float, default=0.0,
                     help="run the suite with the wall clock moved this many days (negative: into the past)")


_shift: dict[str, object] = {}


def _travel(days: float) -> None:
    import time_machine

    traveller = time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=days), tick=True)
    traveller.start()
    _shift["traveller"] = traveller


def _stop() -> None:
    traveller = _shift.pop("traveller", None)
    if traveller is not None:
        traveller.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "subprocess_clock: subprocesses or a server (mongod's _id) read the wall clock too; runs on "
                   "the real clock under --shift-clock-days")
    days = config.getoption("--shift-clock-days")
    if days:
        _shift["days"] = days
        _travel(days)
        config.add_cleanup(_stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    real_clock = "days" in _shift and item.get_closest_marker("subprocess_clock") is not None
    if real_clock:
        _stop()
    try:
        yield
    finally:
        if real_clock:
            _travel(_shift["days"])


def pytest_report_header(config):
    days = config.getoption("--shift-clock-days")
    if days:
        return f"wall clock shifted by {days:+g} days: now is {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return None
