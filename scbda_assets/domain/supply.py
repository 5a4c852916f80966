"""Supply models (SPEC §7): which supplier serves a purchase order, its planned lead time and its actual delay.

- Each category is served by a few suppliers (fresh dairy only by local suppliers); among them a supplier is chosen
  with probability ∝ reliability_score ** CHOICE_SHARPNESS, so more reliable suppliers get more orders.
- Planned lead time ~ Normal(avg_lead_time_days, lead_time_stddev_days), floored at MIN_LEAD_DAYS.
- Actual arrival = planned + an exponential delay that happens with probability DELAY_FACTOR × (1 − reliability)
  (so on-time rates follow reliability: 0.84, 0.76, 0.52, 0.28 for the four suppliers), mean delay
  DELAY_MEAN_FRACTION × the supplier's average lead time.
"""

from __future__ import annotations

import numpy as np

from scbda_assets.domain.reference import SKUS, SUPPLIERS

CATEGORY_SUPPLIERS = {
    "Staples": ("SUP-LOCAL-001", "SUP-REGIONAL-001", "SUP-IMPORT-001"),
    "Dairy": ("SUP-LOCAL-002", "SUP-LOCAL-001"),
    "Snacks": ("SUP-LOCAL-001", "SUP-LOCAL-002", "SUP-REGIONAL-001"),
    "Beverages": ("SUP-LOCAL-002", "SUP-REGIONAL-001"),
    "Cleaning": ("SUP-REGIONAL-001", "SUP-IMPORT-001", "SUP-LOCAL-001"),
}
CHOICE_SHARPNESS = 4.0
MIN_LEAD_DAYS = 0.5
DELAY_FACTOR = 4.0
DELAY_MEAN_FRACTION = 0.5

SUPPLIER_IDS = np.array([s.supplier_id for s in SUPPLIERS])
RELIABILITY = np.array([s.reliability_score for s in SUPPLIERS])
LEAD_MEAN = np.array([s.avg_lead_time_days for s in SUPPLIERS], dtype=float)
LEAD_SD = np.array([s.lead_time_stddev_days for s in SUPPLIERS], dtype=float)
DELAY_PROBABILITY = np.minimum(DELAY_FACTOR * (1 - RELIABILITY), 0.95)
DELAY_MEAN = DELAY_MEAN_FRACTION * LEAD_MEAN


def _choice_matrix() -> np.ndarray:
    """P(supplier | sku), shape (n_skus, n_suppliers)."""
    index = {sid: i for i, sid in enumerate(SUPPLIER_IDS)}
    matrix = np.zeros((len(SKUS), len(SUPPLIERS)))
    for k, sku in enumerate(SKUS):
        for sid in CATEGORY_SUPPLIERS[sku.category]:
            matrix[k, index[sid]] = RELIABILITY[index[sid]] ** CHOICE_SHARPNESS
    return matrix / matrix.sum(axis=1, keepdims=True)


SUPPLIER_CHOICE = _choice_matrix()


def choose_suppliers(rng: np.random.Generator, sku: np.ndarray) -> np.ndarray:
    """Supplier index per purchase order (vectorized inverse-CDF draw)."""
    cdf = np.cumsum(SUPPLIER_CHOICE[sku], axis=1)
    u = rng.random(len(sku))[:, None]
    return np.minimum((u > cdf).sum(axis=1), len(SUPPLIERS) - 1)


def planned_lead_days(rng: np.random.Generator, supplier: np.ndarray) -> np.ndarray:
    return np.maximum(rng.normal(LEAD_MEAN[supplier], LEAD_SD[supplier]), MIN_LEAD_DAYS)


def delay_days(rng: np.random.Generator, supplier: np.ndarray) -> np.ndarray:
    delayed = rng.random(len(supplier)) < DELAY_PROBABILITY[supplier]
    return np.where(delayed, rng.exponential(DELAY_MEAN[supplier]), 0.0)


def lead_time_moments() -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (days²) of the actual lead time per SKU, over its supplier mix (for sizing)."""
    # Per supplier: L = planned + delay; planned ~ N(m, s) (the floor is negligible), delay = Bernoulli(p) × Exp(d).
    p, d = DELAY_PROBABILITY, DELAY_MEAN
    mean_s = LEAD_MEAN + p * d
    var_s = LEAD_SD**2 + p * 2 * d**2 - (p * d) ** 2
    mean = SUPPLIER_CHOICE @ mean_s
    second = SUPPLIER_CHOICE @ (var_s + mean_s**2)
    return mean, second - mean**2
