"""Demand models: shares, time-of-day/weekend/Ramadan multipliers, quantities, prices, priorities (seeded)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from scbda_assets.domain import demand
from scbda_assets.domain.reference import DCS, REGIONS, RULES, SKUS


def test_pair_shares_follow_weights_and_region_factors():
    shares = demand.PAIR_SHARES.reshape(len(SKUS), len(DCS))
    assert shares.sum() == pytest.approx(1.0)
    sku_totals = shares.sum(axis=1)
    weights = np.array([s.demand_weight for s in SKUS])
    assert np.allclose(sku_totals, weights / weights.sum())
    region_totals = {r.region_id: 0.0 for r in REGIONS}
    for k, dc in enumerate(DCS):
        region_totals[dc.region_id] += shares[:, k].sum()
    factor_total = sum(r.demand_factor for r in REGIONS)
    for region in REGIONS:
        assert region_totals[region.region_id] == pytest.approx(region.demand_factor / factor_total)
    # Lahore and Faisalabad split Punjab North by design throughput (20000 : 12000).
    assert shares[:, 1].sum() / shares[:, 3].sum() == pytest.approx(20000 / 12000)


def test_hourly_profile_averages_one_and_peaks_in_local_daytime():
    assert demand.HOURLY_PROFILE.mean() == pytest.approx(1.0)
    # 14:00 UTC is 19:00 in Karachi (evening peak); 22:00 UTC is 03:00 local (night).
    tuesday = np.datetime64("2026-05-05T14:00", "ms")
    night = np.datetime64("2026-05-05T22:00", "ms")
    assert demand.demand_multiplier(tuesday) == pytest.approx(demand.HOURLY_PROFILE[19])
    assert demand.demand_multiplier(night) == pytest.approx(demand.HOURLY_PROFILE[3])
    assert demand.demand_multiplier(tuesday) > 2.5 * demand.demand_multiplier(night)


def test_weekend_is_saturday_and_sunday_in_karachi():
    # Friday 19:30 UTC is already Saturday 00:30 in Karachi.
    friday_utc = np.datetime64("2026-05-08T19:30", "ms")
    thursday_same_hour = np.datetime64("2026-05-07T19:30", "ms")
    ratio = demand.demand_multiplier(friday_utc) / demand.demand_multiplier(thursday_same_hour)
    assert ratio == pytest.approx(RULES.weekend_demand_multiplier)
    monday = np.datetime64("2026-05-10T19:30", "ms")  # Monday 00:30 local
    assert demand.demand_multiplier(monday) == pytest.approx(demand.demand_multiplier(thursday_same_hour))


def test_ramadan_from_settings_or_default_ranges():
    t = np.datetime64("2026-03-01T08:00", "ms")  # inside the default 2026 range
    plain = np.datetime64("2026-04-05T08:00", "ms")  # same weekday (Sunday) and hour, outside
    assert demand.demand_multiplier(t) / demand.demand_multiplier(plain) == pytest.approx(
        RULES.ramadan_demand_multiplier
    )
    override = demand.ramadan_ranges((dt.date(2026, 4, 1), dt.date(2026, 4, 30)))
    assert demand.demand_multiplier(plain, override) / demand.demand_multiplier(t, override) == pytest.approx(
        RULES.ramadan_demand_multiplier
    )


def test_order_quantity_poisson_with_floor_one():
    rng = np.random.default_rng(1)
    sku = np.full(200_000, 4)  # SKU-DAIRY-001, mean 4
    qty = demand.order_quantities(rng, sku)
    assert qty.min() == 1
    assert qty.mean() == pytest.approx(demand.SKU_UNITS_PER_ORDER[4], rel=0.01)
    # The floor moves P(0) into 1: P(1) = P(0) + P(1) of Poisson(4).
    assert np.mean(qty == 1) == pytest.approx(np.exp(-4) * (1 + 4), abs=0.005)


def test_unit_price_lognormal_around_margin_never_below_cost():
    rng = np.random.default_rng(2)
    sku = np.arange(100_000) % len(SKUS)
    price = demand.unit_prices(rng, sku)
    assert np.all(price >= demand.SKU_COST[sku])
    for k in range(len(SKUS)):
        mean = price[sku == k].mean()
        assert mean == pytest.approx(demand.SKU_COST[k] * (1 + demand.SKU_MARGIN[k]), rel=0.02)


def test_priority_correlates_with_order_value():
    rng = np.random.default_rng(3)
    sku = np.zeros(50_000, dtype=int)
    qty = demand.order_quantities(rng, sku)
    value = demand.unit_prices(rng, sku) * qty
    prio = demand.priorities(rng, sku, value)
    means = {p: value[prio == p].mean() for p in ("LOW", "NORMAL", "HIGH")}
    assert means["LOW"] < means["NORMAL"] < means["HIGH"]
    shares = {p: np.mean(prio == p) for p in means}
    assert all(0.05 < share < 0.8 for share in shares.values()), shares


def test_volatility_draw_mean_one_per_region():
    rng = np.random.default_rng(4)
    draws = np.array([demand.volatility_draw(rng) for _ in range(20_000)])
    assert draws.mean(axis=0) == pytest.approx(np.ones(demand.N_PAIRS), rel=0.02)
    # Pairs of one region share the draw; spread grows with the region's volatility (Sindh most volatile).
    khi, isb = draws[:, 0], draws[:, 2]
    assert np.std(np.log(khi)) == pytest.approx(0.35, rel=0.05)
    assert np.std(np.log(isb)) == pytest.approx(0.22, rel=0.05)
