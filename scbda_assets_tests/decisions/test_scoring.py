"""Scores on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from scbda_assets.decisions import risk, scoring


def test_wape_and_bias():
    actual = np.array([10.0, 0.0, 30.0])
    forecast = np.array([12.0, 1.0, 24.0])
    assert scoring.wape(forecast, actual) == pytest.approx((2 + 1 + 6) / 40)
    assert scoring.bias(forecast, actual) == pytest.approx((2 + 1 - 6) / 40)
    assert scoring.wape(forecast, np.zeros(3)) is None


def test_brier_and_reliability_by_decile():
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 1.0, 0.55])
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    assert scoring.brier(p, y) == pytest.approx(np.mean((p - y) ** 2))
    table = {row["decile"]: row for row in scoring.reliability(p, y)}
    assert sorted(table) == [0, 5, 9]  # populated deciles only; 1.0 falls in the last one
    assert table[0]["count"] == 4 and table[0]["observed"] == 0.25 and table[0]["mean_predicted"] == 0.05
    assert table[9]["count"] == 3 and table[9]["observed"] == 1.0


def test_severity_thresholds_are_inclusive():
    assert [risk.severity(p, 0.5, 0.1) for p in (0.5, 0.4999, 0.1, 0.0999, None)] == [
        "critical", "warning", "warning", "ok", "ok"]
