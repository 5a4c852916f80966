"""The archival policy as a pure function: threshold, low-water mark, horizon, oldest first, run keys."""

from __future__ import annotations

import datetime as dt

from scbda_assets.archive.policy import MB, HourStats, merge_hours, plan_archive, run_key, safety_horizon

H0 = dt.datetime(2026, 11, 20, 0, tzinfo=dt.UTC)


def _hours(*sizes_mb):
    return [HourStats(H0 + dt.timedelta(hours=i), 100, int(mb * MB)) for i, mb in enumerate(sizes_mb)]


def test_below_threshold_says_so_with_figures():
    plan = plan_archive(data_size=int(250 * MB), hours=_hours(10, 10), threshold_mb=300, low_water=0.7,
                        horizon=H0 + dt.timedelta(hours=10))
    assert not plan.archive and plan.hours == ()
    assert "250.0 MB" in plan.reason and "300.0 MB" in plan.reason


def test_oldest_hours_until_low_water():
    # 330 MB, low water 210 MB: needs 120 MB -> hours of 50 + 50 + 50 (the third crosses it), not the fourth.
    plan = plan_archive(data_size=int(330 * MB), hours=list(reversed(_hours(50, 50, 50, 50, 50))), threshold_mb=300,
                        low_water=0.7, horizon=H0 + dt.timedelta(hours=10))
    assert plan.archive and plan.hours == tuple(H0 + dt.timedelta(hours=i) for i in range(3))
    assert plan.projected_bytes == int(180 * MB) and plan.documents == 300
    assert plan.end == H0 + dt.timedelta(hours=3)


def test_never_newer_than_the_horizon():
    plan = plan_archive(data_size=int(400 * MB), hours=_hours(10, 10, 10, 10), threshold_mb=300, low_water=0.7,
                        horizon=H0 + dt.timedelta(hours=2))
    assert plan.hours == (H0, H0 + dt.timedelta(hours=1))
    assert "still above the low-water mark" in plan.reason


def test_nothing_eligible_is_a_reason_not_a_plan():
    plan = plan_archive(data_size=int(400 * MB), hours=_hours(10), threshold_mb=300, low_water=0.7, horizon=H0)
    assert not plan.archive and "nothing is eligible" in plan.reason


def test_horizon_is_the_hour_of_now_minus_safety():
    assert safety_horizon(dt.datetime(2026, 1, 1, 12, 59, tzinfo=dt.UTC), 60) == dt.datetime(2026, 1, 1, 11,
                                                                                            tzinfo=dt.UTC)


def test_merge_sums_collections_per_hour():
    a, b = _hours(1, 2), _hours(3)
    merged = merge_hours([a, b])
    assert [m.bytes for m in merged] == [int(4 * MB), int(2 * MB)] and merged[0].documents == 200


def test_run_key_is_deterministic_and_changes_with_content():
    hours = _hours(50, 50, 50)
    args = dict(data_size=int(330 * MB), threshold_mb=300, low_water=0.7, horizon=H0 + dt.timedelta(hours=10))
    first, again = plan_archive(hours=hours, **args), plan_archive(hours=list(hours), **args)
    assert run_key(first) == run_key(again)
    late = [*hours[:2], HourStats(hours[2].hour, 101, hours[2].bytes)]
    assert run_key(plan_archive(hours=late, **args)) != run_key(first)
    next_hour = plan_archive(hours=hours, **{**args, "horizon": args["horizon"] + dt.timedelta(hours=1)})
    assert run_key(next_hour) != run_key(first)
