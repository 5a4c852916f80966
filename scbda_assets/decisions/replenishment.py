"""What to order (pure NumPy/SciPy). SPEC §9b.

Per (sku, dc), at service level α (settings ``SCBDA_SERVICE_LEVEL``, default 0.95), from the forecast's demand per
day d and its daily spread σd, and the supplier's measured lead time mean L and spread σL (days):
    safety stock SS = z(α) · √(L · σd² + d² · σL²)
    reorder point ROP = d · L + SS
    order quantity Q = d × the SKU's cycle (calibrated coverage days), at least 1
"To order now": inventory position (on hand + on order) at or below ROP and nothing in transit.
``policy_for_simulation`` gives the same numbers in the simulator's ``Policy`` shape (``scbda generate --policy
recommended``: the generator owns the wiring; see docs/forecast.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from scbda_assets.domain import calibration, demand


@dataclasses.dataclass(frozen=True)
class Recommendation:
    safety_stock: np.ndarray
    reorder_point: np.ndarray
    order_qty: np.ndarray


def recommend(demand_per_day: np.ndarray, demand_sd_per_day: np.ndarray, lead_mean_days: np.ndarray,
              lead_sd_days: np.ndarray, cycle_days: np.ndarray, service_level: float = 0.95) -> Recommendation:
    d, sd, lead, lead_sd = (np.asarray(v, dtype=float) for v in (demand_per_day, demand_sd_per_day, lead_mean_days,
                                                                   lead_sd_days))
    z = stats.norm.ppf(service_level)
    safety = z * np.sqrt(lead * sd**2 + d**2 * lead_sd**2)
    return Recommendation(np.ceil(safety), np.ceil(d * lead + safety), np.maximum(np.ceil(d * cycle_days), 1.0))


def to_order_now(on_hand: np.ndarray, on_order: np.ndarray, reorder_point: np.ndarray) -> np.ndarray:
    """Pairs to order now: position at or below the recommended reorder point and nothing in transit."""
    on_order = np.asarray(on_order)
    return (np.asarray(on_hand) + on_order <= reorder_point) & (on_order == 0)


def policy_for_simulation(cal: calibration.Calibration, service_level: float = 0.95,
                          season: float = 1.0) -> calibration.Policy:
    """The recommendation from the simulator's own expected demand and supplier mix (the closed loop's policy):
    daily spread of a Poisson-compound demand with the volatility draw, lead time moments of the supplier mix."""
    d = cal.pair_units_per_day * season
    sku = demand.PAIR_SKU
    units_per_order = demand.SKU_UNITS_PER_ORDER[sku]
    second_moment = demand.SKU_QTY_MEAN[sku] + demand.SKU_QTY_MEAN[sku] ** 2 + np.exp(-demand.SKU_QTY_MEAN[sku])
    sd = np.sqrt(d * second_moment / units_per_order)  # compound Poisson: Var = λ E[Q²] per day
    rec = recommend(d, sd, calibration.LEAD_MEAN_DAYS[sku], np.sqrt(calibration.LEAD_VAR_DAYS2[sku]),
                    calibration.CYCLE_DAYS[sku], service_level)
    return calibration.Policy(rec.safety_stock.astype(np.int64), rec.reorder_point.astype(np.int64),
                              rec.order_qty.astype(np.int64))


@dataclasses.dataclass(frozen=True, eq=False)
class RecommendedCalibration(calibration.Calibration):
    """The simulator's calibration with the recommended replenishment policy (the closed loop)."""

    service_level: float = 0.95

    def policy(self, season: float = 1.0) -> calibration.Policy:
        return policy_for_simulation(self, self.service_level, season)


def recommended_calibration(cal: calibration.Calibration, service_level: float = 0.95) -> RecommendedCalibration:
    fields = {f.name: getattr(cal, f.name) for f in dataclasses.fields(calibration.Calibration)}
    return RecommendedCalibration(**fields, service_level=service_level)
