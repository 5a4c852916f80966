"""Calibrated sizing of the chain for a given event rate (SPEC §5, §7; rationale and figures in docs/calibration.md).

The design's capacities and coverage days do not fit the demand any rate implies, so stock sizing follows demand:
- expected demand per (sku, dc) pair comes from the rate (demand.PAIR_SHARES, units per order);
- replenishment is a continuous-review (s, S) policy on the inventory position (on hand + on order):
  reorder point s = demand over the expected lead time + safety stock, order up to S = s + Q;
  Q = CYCLE_DAYS of demand (the design's coverage_days ÷ COVERAGE_DIVISOR, clipped) so every pair reorders often
  enough for supplier statistics to mean something;
  safety stock = demand × (SERVICE_Z × σ + BUFFER_DAYS), σ² = Var[lead time] + E[lead time] × DEMAND_NOISE_DAYS;
  perishables run lean (low z, no buffer), the rest keep a strategic buffer;
- each DC's capacity is its expected on-hand volume (safety stock + Q/2 per pair) ÷ a target utilization
  (MEAN_UTILIZATION × the design's relative pressure ** PRESSURE_EXPONENT: 0.56-0.72).
Every quantity scales with the rate, so the same fill rate, utilization and cover hold at any rate; the dimensions
are written with the capacities of the configured rate (``dimension_documents``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from scbda_assets.domain import demand, supply
from scbda_assets.domain.reference import DCS, DIMENSIONS, SKUS

COVERAGE_DIVISOR = 6.0
MIN_CYCLE_DAYS, MAX_CYCLE_DAYS = 1.0, 7.0
# Fresh goods run lean (short shelf life); everything else keeps a strategic buffer of a week on top of the
# statistical safety stock, so only perishables (and pairs waiting for a late delivery) sit under 7 days of cover.
PERISHABLE_CATEGORIES = ("Dairy",)
SERVICE_Z = np.array([0.6 if s.category in PERISHABLE_CATEGORIES else 1.65 for s in SKUS])
BUFFER_DAYS = np.array([0.0 if s.category in PERISHABLE_CATEGORIES else 8.0 for s in SKUS])
DEMAND_NOISE_DAYS = 0.1  # demand-rate uncertainty added to lead-time variance (days² per day of lead time)
MEAN_UTILIZATION = 0.64
PRESSURE_EXPONENT = 0.3  # how much of the design's relative DC pressure survives (0 = none, 1 = all)

CYCLE_DAYS = np.clip(np.array([s.coverage_days for s in SKUS]) / COVERAGE_DIVISOR, MIN_CYCLE_DAYS, MAX_CYCLE_DAYS)
LEAD_MEAN_DAYS, LEAD_VAR_DAYS2 = supply.lead_time_moments()


@dataclasses.dataclass(frozen=True)
class Policy:
    """Replenishment parameters per pair (integers, units) for one demand level."""

    safety_stock: np.ndarray
    reorder_point: np.ndarray
    order_qty: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)  # identity hash: one object per rate (cached)
class Calibration:
    rate: float  # orders + shipments per minute at average (weekday, multiplier 1) demand
    orders_per_minute: float
    pair_orders_per_minute: np.ndarray  # at multiplier 1
    pair_units_per_day: np.ndarray  # planning demand: multiplier 1 × weekly average (weekends)
    dc_capacity_m3: np.ndarray

    def policy(self, season: float = 1.0) -> Policy:
        return _policy(self, season)

    def expected_on_hand(self) -> np.ndarray:
        policy = self.policy()
        return policy.safety_stock + policy.order_qty / 2


@functools.lru_cache(maxsize=64)
def _policy(calibration: Calibration, season: float) -> Policy:
    d = calibration.pair_units_per_day * season
    sku = demand.PAIR_SKU
    sigma_days = np.sqrt(LEAD_VAR_DAYS2[sku] + LEAD_MEAN_DAYS[sku] * DEMAND_NOISE_DAYS)
    safety = d * (SERVICE_Z[sku] * sigma_days + BUFFER_DAYS[sku])
    reorder = d * LEAD_MEAN_DAYS[sku] + safety
    qty = d * CYCLE_DAYS[sku]
    return Policy(
        safety_stock=np.ceil(safety).astype(np.int64),
        reorder_point=np.ceil(reorder).astype(np.int64),
        order_qty=np.maximum(np.ceil(qty), 1).astype(np.int64),
    )


def _design_pressure() -> np.ndarray:
    """The design's relative pressure per DC: its share of demand ÷ its share of capacity (mean 1)."""
    dc_demand = np.bincount(demand.PAIR_DC, weights=demand.PAIR_SHARES, minlength=len(DCS))
    capacity = np.array([d.capacity_m3 for d in DCS], dtype=float)
    pressure = dc_demand / (capacity / capacity.sum())
    return pressure / np.exp(np.log(pressure).mean())


TARGET_UTILIZATION = MEAN_UTILIZATION * _design_pressure() ** PRESSURE_EXPONENT


def shipments_per_minute() -> float:
    """Expected purchase orders per minute: one per pair per cycle (independent of the rate)."""
    return float((1.0 / CYCLE_DAYS[demand.PAIR_SKU]).sum() / 1440)


@functools.lru_cache(maxsize=64)
def calibrate(rate: float) -> Calibration:
    """Sizing for ``rate`` orders + shipments per minute (shipments are a small, rate-independent share)."""
    orders = max(rate - shipments_per_minute(), rate / 2)
    pair_orders = orders * demand.PAIR_SHARES
    units_per_day = pair_orders * 1440 * demand.SKU_UNITS_PER_ORDER[demand.PAIR_SKU] * demand.WEEKLY_AVERAGE_MULTIPLIER
    draft = Calibration(rate, orders, pair_orders, units_per_day, np.ones(len(DCS)))
    volume = np.bincount(
        demand.PAIR_DC, weights=draft.expected_on_hand() * demand.SKU_STORAGE[demand.PAIR_SKU], minlength=len(DCS)
    )
    capacity = np.array([_significant(v) for v in volume / TARGET_UTILIZATION])
    return dataclasses.replace(draft, dc_capacity_m3=capacity)


def _significant(value: float, digits: int = 3) -> float:
    """Round to a few significant digits (capacities read like planned numbers, not float noise)."""
    if value <= 0:
        return 0.0
    return float(np.round(value, digits - 1 - int(np.floor(np.log10(value)))))


def dimension_documents(collection: str, rate: float) -> list[dict]:
    """The dimension documents as written by the reference assets for the configured rate.

    Fields of SPEC §5; ``capacity_m3`` (dcs_dim) and ``coverage_days`` (skus_dim) are the calibrated values the
    simulation uses, and the design's own values are kept beside them as ``design_capacity_m3`` /
    ``design_coverage_days``.
    """
    from scbda_assets.domain.reference import dimension_documents as design_documents

    docs = design_documents(collection)
    if collection == "dcs_dim":
        capacity = calibrate(rate).dc_capacity_m3
        for doc, value in zip(docs, capacity):
            doc["design_capacity_m3"] = doc["capacity_m3"]
            doc["capacity_m3"] = float(value)
    elif collection == "skus_dim":
        for doc, value in zip(docs, CYCLE_DAYS):
            doc["design_coverage_days"] = doc["coverage_days"]
            doc["coverage_days"] = float(value)
    return docs


DIMENSION_KEYS = {name: key for name, (key, _) in DIMENSIONS.items()}


def expected_dimensions(rate: float) -> dict[str, tuple[str, list[dict]]]:
    """collection -> (business key, documents) of every dimension for ``rate``."""
    return {name: (key, dimension_documents(name, rate)) for name, key in DIMENSION_KEYS.items()}
