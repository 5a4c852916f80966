"""The daily scorer on a history with known outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from scbda_assets.decisions import daily_scores

MONDAY = np.datetime64("2026-05-03T19:00", "h")  # Monday 00:00 Asia/Karachi


def test_scores_of_a_history_that_is_exactly_its_seasonal_pattern():
    pattern = np.array([1.0 + (h % 24) for h in range(168)])  # hour-of-day shape, 1 … 24 units
    weeks = 3
    units = np.tile(pattern, weeks)[None, :] * np.array([[1.0], [2.0]])
    hours = MONDAY + np.arange(weeks * 168) * np.timedelta64(1, "h")
    origins = range(2 * 168, 2 * 168 + 24)  # the first day of week 3; its next 24 h are known
    live = np.array([[units[0, o - 1] / 4, units[1, o - 1] / 4] for o in origins])  # last 15 min = 1/4 of the hour
    result = daily_scores.score_forecasts(units, hours, origins, live, true_rate=units * 1.1, ramadan=())
    scores = result["scores"]
    assert result["origins"] == 24 and result["pair_hours_scored"] == 2 * 24 * 24
    assert scores["forecast"]["wape"] == pytest.approx(0.0, abs=1e-12)
    assert scores["forecast"]["bias_vs_true"] == pytest.approx(1 / 1.1 - 1)
    # Plain reference for the baselines: the 7-day mean is 12.5 × level per hour; 15 min × 96 repeats the last hour.
    actual, mean7, seed = [], [], []
    for o in origins:
        for p, level in enumerate((1.0, 2.0)):
            for h in range(o, o + 24):
                actual.append(units[p, h])
                mean7.append(12.5 * level)
                seed.append(units[p, o - 1])
    actual, mean7, seed = map(np.array, (actual, mean7, seed))
    assert scores["mean_7d"]["wape"] == pytest.approx(np.abs(mean7 - actual).sum() / actual.sum())
    assert scores["live_15m_x96"]["wape"] == pytest.approx(np.abs(seed - actual).sum() / actual.sum())
    assert scores["live_15m_x96"]["bias"] == pytest.approx((seed - actual).sum() / actual.sum())
