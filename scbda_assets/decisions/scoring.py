"""Scores of forecasts and probabilities (pure). SPEC §9b.

- WAPE = Σ|forecast − actual| / Σ actual; bias = Σ(forecast − actual) / Σ actual (positive: over-forecast).
- Brier = mean (p − outcome)²; reliability: per decile of p (0–10 %, …, 90–100 %), the mean prediction, the
  observed frequency of the outcome and the count.
"""

from __future__ import annotations

import numpy as np


def wape(forecast: np.ndarray, actual: np.ndarray) -> float | None:
    total = float(np.sum(actual))
    return float(np.sum(np.abs(np.asarray(forecast) - actual))) / total if total > 0 else None


def bias(forecast: np.ndarray, actual: np.ndarray) -> float | None:
    total = float(np.sum(actual))
    return float(np.sum(np.asarray(forecast) - actual)) / total if total > 0 else None


def brier(probability: np.ndarray, outcome: np.ndarray) -> float | None:
    probability, outcome = np.asarray(probability, dtype=float), np.asarray(outcome, dtype=float)
    return float(np.mean((probability - outcome) ** 2)) if len(probability) else None


def reliability(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> list[dict]:
    """Populated deciles only: ``{"decile", "low", "high", "count", "mean_predicted", "observed"}``."""
    probability, outcome = np.asarray(probability, dtype=float), np.asarray(outcome, dtype=float)
    index = np.minimum((probability * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append({"decile": b, "low": b / bins, "high": (b + 1) / bins, "count": int(mask.sum()),
                         "mean_predicted": float(probability[mask].mean()), "observed": float(outcome[mask].mean())})
    return rows
