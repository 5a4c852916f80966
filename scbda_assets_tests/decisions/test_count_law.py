"""The Spark SQL count law of the stockout KPI (kpis/sql.py) against SciPy and a brute-force sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scbda_assets.decisions import risk
from scbda_assets.kpis import compute, sql

CASES = [  # (on_hand, mu, ratio)
    (0, 3.0, 1.0), (2, 3.0, 1.0), (10, 3.0, 1.0),  # Poisson
    (5, 4.0, 2.5), (12, 4.0, 2.5), (40, 4.0, 2.5), (0, 0.0, 3.0),  # negative binomial, no demand
    (95, 100.0, 8.0), (30, 100.0, 8.0), (3, 5.0, 60.0),  # heavy tail: n < 1
    (98_000, 100_000.0, 20.0),  # wide: summed over blocks of several units
]


def _brute(on_hand: int, mu: float, ratio: float) -> tuple[float, float]:
    if mu == 0:
        return 0.0, 0.0
    if ratio <= 1:
        dist = stats.poisson(mu)
    else:
        dist = stats.nbinom(mu / (ratio - 1), 1 / ratio)
    k = np.arange(0, int(mu + 40 * math.sqrt(mu * ratio) + 80 * ratio + 50))
    pmf = dist.pmf(k)
    return float(pmf[k > on_hand].sum()), float((np.maximum(k - on_hand, 0) * pmf).sum())


def test_count_law_matches_scipy(spark):
    frame = spark.createDataFrame([(float(s), m, r) for s, m, r in CASES],
                                  "on_hand_qty double, mu double, ratio double")
    rows = spark.sql(sql.count_law("{law}"), args={"grid_blocks": compute.GRID_BLOCKS}, law=frame).collect()
    got = {(r["on_hand_qty"], r["mu"], r["ratio"]): r for r in rows}
    for on_hand, mu, ratio in CASES:
        row = got[(float(on_hand), mu, ratio)]
        probability, shortfall = _brute(on_hand, mu, ratio)
        exact = mu < 10_000  # else summed over blocks of several units (the range exceeds GRID_BLOCKS)
        assert row["stockout_probability"] == pytest.approx(probability, abs=1e-9 if exact else 2e-4), (on_hand, mu)
        assert row["stockout_probability"] == pytest.approx(float(risk.stockout_probability(on_hand, mu, ratio)),
                                                            abs=1e-9 if exact else 2e-4)
        assert row["demand_at_risk_units"] == pytest.approx(shortfall, rel=1e-6 if exact else 1e-3, abs=1e-9)
