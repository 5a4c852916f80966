"""Demand models (SPEC §7): who orders what, when, how much, at what value and priority. Pure NumPy.

- Demand is split over (sku, dc) pairs by SKU demand weight × region demand factor; a region with two DCs splits
  its demand by the DCs' design throughput.
- The time-of-day profile is in Asia/Karachi local time and averages exactly 1 over a day; weekend (Saturday and
  Sunday) and Ramadan multiply on top, so ``events_per_minute`` is the rate of an average weekday minute.
- A volatility draw per (region, interval) is log-normal with mean 1 and sigma = the region's demand_volatility.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from scbda_assets.domain.reference import DCS, RAMADAN_RANGES, REGIONS, RULES, SKUS

BUSINESS_OFFSET = np.timedelta64(5, "h")  # Asia/Karachi is UTC+5 all year (no DST)
WEEKEND_DAYS = (5, 6)  # Saturday, Sunday (Monday = 0)

# Orders per hour of the local day, relative (DC orders from retailers: busy shopping hours, quiet nights, but
# retailers also order overnight, so the profile is flatter than shop footfall). Normalized to mean 1 below.
_HOURLY = np.array(
    [0.55, 0.48, 0.45, 0.45, 0.48, 0.55, 0.70, 0.90, 1.10, 1.25, 1.35, 1.40,
     1.35, 1.25, 1.20, 1.22, 1.28, 1.35, 1.42, 1.45, 1.35, 1.15, 0.90, 0.70]
)
HOURLY_PROFILE = _HOURLY / _HOURLY.mean()

# Mean of the Poisson order quantity (before the floor of 1) and retail margin, per category.
ORDER_QTY_MEAN = {"Staples": 2.0, "Dairy": 4.0, "Snacks": 3.0, "Beverages": 3.0, "Cleaning": 2.0}
MARGIN = {"Staples": 0.12, "Dairy": 0.15, "Snacks": 0.30, "Beverages": 0.25, "Cleaning": 0.22}
VALUE_SIGMA = 0.08  # log-normal spread of the price paid around cost × (1 + margin)
PRIORITY_NOISE = 0.35  # how loosely priority follows order value
PRIORITY_HIGH, PRIORITY_LOW = 0.45, -0.45  # thresholds on (log value vs the SKU's typical order) + noise

N_SKUS, N_DCS = len(SKUS), len(DCS)
N_PAIRS = N_SKUS * N_DCS
# Pair p = sku_index * N_DCS + dc_index.
PAIR_SKU = np.repeat(np.arange(N_SKUS), N_DCS)
PAIR_DC = np.tile(np.arange(N_DCS), N_SKUS)
_REGION_INDEX = {r.region_id: i for i, r in enumerate(REGIONS)}
DC_REGION = np.array([_REGION_INDEX[d.region_id] for d in DCS])
PAIR_REGION = DC_REGION[PAIR_DC]
REGION_VOLATILITY = np.array([r.demand_volatility for r in REGIONS])
SKU_COST = np.array([s.unit_cost for s in SKUS], dtype=float)
SKU_STORAGE = np.array([s.storage_m3 for s in SKUS], dtype=float)
SKU_QTY_MEAN = np.array([ORDER_QTY_MEAN[s.category] for s in SKUS])
SKU_MARGIN = np.array([MARGIN[s.category] for s in SKUS])
# Mean of max(1, Poisson(lam)) = lam + P(0) = lam + exp(-lam).
SKU_UNITS_PER_ORDER = SKU_QTY_MEAN + np.exp(-SKU_QTY_MEAN)


def pair_shares() -> np.ndarray:
    """Share of all orders that each (sku, dc) pair receives; sums to 1."""
    sku_w = np.array([s.demand_weight for s in SKUS], dtype=float)
    region_w = np.array([r.demand_factor for r in REGIONS], dtype=float)
    throughput = np.array([d.throughput_per_day for d in DCS], dtype=float)
    region_throughput = np.bincount(DC_REGION, weights=throughput, minlength=len(REGIONS))
    dc_w = region_w[DC_REGION] / region_w.sum() * throughput / region_throughput[DC_REGION]
    return (sku_w / sku_w.sum())[PAIR_SKU] * dc_w[PAIR_DC]


PAIR_SHARES = pair_shares()


def ramadan_ranges(override: tuple[dt.date, dt.date] | None) -> tuple[tuple[dt.date, dt.date], ...]:
    return (override,) if override else RAMADAN_RANGES


def local_date(t: np.datetime64) -> dt.date:
    return (t + BUSINESS_OFFSET).astype("datetime64[D]").item()


def demand_multiplier(t: np.datetime64, ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES) -> float:
    """Time-of-day × weekend × Ramadan multiplier at UTC time ``t`` (datetime64), local business time."""
    local = t + BUSINESS_OFFSET
    hour = int((local - local.astype("datetime64[D]")) // np.timedelta64(1, "h"))
    return HOURLY_PROFILE[hour] * season_multiplier(local_date(t), ramadan) * (
        RULES.weekend_demand_multiplier if local_date(t).weekday() in WEEKEND_DAYS else 1.0
    )


def season_multiplier(day: dt.date, ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES) -> float:
    """Ramadan multiplier of a local business date (1 outside Ramadan)."""
    in_ramadan = any(first <= day <= last for first, last in ramadan)
    return RULES.ramadan_demand_multiplier if in_ramadan else 1.0


WEEKLY_AVERAGE_MULTIPLIER = (7 - len(WEEKEND_DAYS) + len(WEEKEND_DAYS) * RULES.weekend_demand_multiplier) / 7


def volatility_draw(rng: np.random.Generator) -> np.ndarray:
    """One log-normal demand shock per region (mean 1), broadcast to pairs."""
    sigma = REGION_VOLATILITY
    return rng.lognormal(-sigma**2 / 2, sigma)[PAIR_REGION]


def order_quantities(rng: np.random.Generator, sku: np.ndarray) -> np.ndarray:
    """Requested quantity per order: Poisson around the category mean, at least 1."""
    return np.maximum(rng.poisson(SKU_QTY_MEAN[sku]), 1)


def unit_prices(rng: np.random.Generator, sku: np.ndarray) -> np.ndarray:
    """Price per unit (PKR): log-normal around cost × (1 + margin), never below cost."""
    cost = SKU_COST[sku]
    price = cost * (1 + SKU_MARGIN[sku]) * rng.lognormal(-VALUE_SIGMA**2 / 2, VALUE_SIGMA, size=len(sku))
    return np.maximum(np.round(price, 2), cost)


PRIORITIES = np.array(["LOW", "NORMAL", "HIGH"])


def priorities(rng: np.random.Generator, sku: np.ndarray, requested_value: np.ndarray) -> np.ndarray:
    """HIGH / NORMAL / LOW, correlated with the order's value relative to the SKU's typical order."""
    typical = SKU_COST[sku] * (1 + SKU_MARGIN[sku]) * SKU_UNITS_PER_ORDER[sku]
    score = np.log(requested_value / typical) + rng.normal(0.0, PRIORITY_NOISE, size=len(sku))
    return PRIORITIES[1 + (score > PRIORITY_HIGH) - (score < PRIORITY_LOW)]


def expected_hourly_units(
    pair_orders_per_minute: np.ndarray, hours: np.ndarray,
    ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES,
) -> np.ndarray:
    """The simulator's true expected units requested per (pair, UTC hour): orders per minute at multiplier 1 ×
    the hour's time-of-day/weekend/Ramadan multiplier × 60 × the mean order quantity (the volatility draw has mean
    1). ``hours``: datetime64 hour starts; returns shape (pairs, hours). What forecasts are scored against."""
    mid_hours = hours.astype("datetime64[m]") + np.timedelta64(30, "m")
    multipliers = np.array([demand_multiplier(h, ramadan) for h in mid_hours])
    per_hour = pair_orders_per_minute * 60 * SKU_UNITS_PER_ORDER[PAIR_SKU]
    return per_hour[:, None] * multipliers[None, :]
