"""Stockout probability from a count distribution (pure NumPy/SciPy), as the KPI's Spark SQL computes it
(``kpis/sql.py``, compared with this in the tests). SPEC §9b.

Demand over the horizon X has mean μ (the forecast summed to the next receipt) and variance φ·μ (φ: the measured
variance-to-mean ratio, ``forecast.variance_ratio``). φ ≤ 1 → Poisson(μ); else negative binomial with
n = μ / (φ − 1), p = 1 / φ. P(stockout) = P(X > on_hand).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

POISSON_BELOW = 1.0 + 1e-6  # a ratio this close to 1 is Poisson (n would overflow)


def stockout_probability(on_hand: np.ndarray, mean: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    on_hand, mean, ratio = (np.asarray(v, dtype=float) for v in (on_hand, mean, ratio))
    stock = np.floor(on_hand)
    poisson = ratio <= POISSON_BELOW
    safe_ratio = np.where(poisson, 2.0, ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        nb = stats.nbinom.sf(stock, np.maximum(mean, 1e-12) / (safe_ratio - 1.0), 1.0 / safe_ratio)
        po = stats.poisson.sf(stock, np.maximum(mean, 1e-12))
    return np.where(mean > 0, np.where(poisson, po, nb), 0.0)


def severity(probability: float | None, critical: float, warning: float) -> str:
    if probability is None:
        return "ok"
    return "critical" if probability >= critical else "warning" if probability >= warning else "ok"
