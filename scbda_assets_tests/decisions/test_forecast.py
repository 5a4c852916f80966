"""The seasonal forecast and the true expected demand against plain-Python references on small data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from scbda_assets.decisions import forecast
from scbda_assets.domain import calibration, demand

MONDAY = np.datetime64("2026-05-03T19:00", "h")  # Monday 00:00 in Asia/Karachi (UTC+5)
NO_RAMADAN: tuple = ()


def _hours(n: int, first: np.datetime64 = MONDAY) -> np.ndarray:
    return first + np.arange(n) * np.timedelta64(1, "h")


def test_hour_of_week_is_local_monday_based():
    hours = _hours(3, np.datetime64("2026-05-03T18:00", "h"))  # Sunday 23:00 local, then Monday 00:00, 01:00
    assert forecast.hour_of_week(hours).tolist() == [167, 0, 1]


def test_fit_recovers_an_exact_seasonal_pattern_and_forecasts_it():
    # Two pairs, three weeks of demand that is exactly level x (hour of week pattern): the forecast is that pattern.
    pattern = np.array([1.0 + (h % 24) / 10 + (2.0 if h // 24 >= 5 else 0.0) for h in range(168)])
    levels = np.array([3.0, 10.0])
    hours = _hours(3 * 168)
    units = levels[:, None] * np.tile(pattern, 3)[None, :]
    model = forecast.fit(units, hours, NO_RAMADAN)
    ahead = _hours(48, MONDAY + 3 * 168 * np.timedelta64(1, "h"))
    expected = levels[:, None] * pattern[:48][None, :]  # plain reference: next Monday and Tuesday
    assert model.hourly(ahead) == pytest.approx(expected, rel=1e-9)
    assert model.dispersion.tolist() == [1.0, 1.0]  # no noise: the Poisson floor


def test_ramadan_is_divided_out_and_applied_again():
    ramadan = ((dt.date(2026, 5, 11), dt.date(2026, 5, 17)),)  # the second local week
    flat = np.ones((1, 3 * 168))
    flat[0, 168:336] *= 1.8  # the data: 1.8x during Ramadan
    model = forecast.fit(flat, _hours(3 * 168), ramadan)
    assert model.hourly(_hours(2, MONDAY + 504 * np.timedelta64(1, "h")))[0] == pytest.approx([1.0, 1.0])
    assert model.hourly(_hours(1, MONDAY + 170 * np.timedelta64(1, "h")))[0] == pytest.approx([1.8])


def test_cumulative_from_counts_a_partial_first_hour_pro_rata():
    units = np.tile(np.arange(1.0, 169.0), 2)[None, :]  # hour h of the week has h + 1 units
    model = forecast.fit(units, _hours(336), NO_RAMADAN)
    origin = (MONDAY + 336 * np.timedelta64(1, "h")).astype("datetime64[ms]") + np.timedelta64(15, "m")
    cum = forecast.cumulative_from(model, origin, 3)
    # Reference: from Monday 00:15 — 3/4 of hour 0 (1 unit), then hour 1 (2), ... : k = 1 -> 0.75 + 0.25 * 2
    assert cum[0].tolist() == pytest.approx([0.0, 0.75 + 0.5, 0.75 + 2 + 0.75, 0.75 + 2 + 3 + 1.0])


def test_dispersion_is_the_pearson_ratio_around_the_fit():
    rng = np.random.default_rng(5)
    # 50 pairs (the profile is pooled over them), mean 8, variance 40: variance-to-mean ratio 5.
    units = rng.negative_binomial(2, 0.2, size=(50, 14 * 24)).astype(float)
    model = forecast.fit(units, _hours(14 * 24), NO_RAMADAN)
    fitted = model.hourly(_hours(14 * 24))
    reference = ((units - fitted) ** 2).sum(axis=1) / fitted.sum(axis=1)
    assert model.dispersion == pytest.approx(reference)
    assert 4.5 < float(np.mean(reference)) < 5.5


def test_true_expected_units_follow_the_simulators_rate():
    cal = calibration.calibrate(1500.0)
    saturday_noon = np.datetime64("2026-05-09T07:00", "h")  # 12:00 local, a Saturday
    got = demand.expected_hourly_units(cal.pair_orders_per_minute, np.array([saturday_noon]), NO_RAMADAN)
    pair = 0
    reference = (cal.pair_orders_per_minute[pair] * 60 * demand.HOURLY_PROFILE[12] * 1.3
                 * (demand.SKU_QTY_MEAN[0] + np.exp(-demand.SKU_QTY_MEAN[0])))
    assert got[pair, 0] == pytest.approx(reference)


def test_the_forecast_beats_the_seven_day_mean_on_a_simulated_week():
    # Seeded simulation, 9 days: forecast the last day from the 8 before; WAPE vs the true rate.
    from scbda_assets.decisions import backtest, scoring

    history = backtest.simulate(9, seed=3, start=dt.datetime(2026, 5, 4))
    units = history.hourly(history.requested)
    model = forecast.fit(units[:, :192], history.hours(0, 192))
    truth = demand.expected_hourly_units(history.pair_orders_per_minute, history.hours(192, 24))
    mean_7d = np.repeat(units[:, 24:192].sum(axis=1, keepdims=True) / 168, 24, axis=1)
    ours, baseline = scoring.wape(model.hourly(history.hours(192, 24)), truth), scoring.wape(mean_7d, truth)
    assert ours < 0.7 * baseline, (ours, baseline)
