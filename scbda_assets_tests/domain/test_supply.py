"""Supply models: supplier choice by reliability, planned lead times, exponential delays (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from scbda_assets.domain import supply
from scbda_assets.domain.reference import SKUS, SUPPLIERS


def test_choice_prefers_reliable_suppliers_among_eligible():
    rng = np.random.default_rng(5)
    staples = np.zeros(100_000, dtype=int)
    chosen = supply.choose_suppliers(rng, staples)
    freq = np.bincount(chosen, minlength=len(SUPPLIERS)) / len(chosen)
    assert freq == pytest.approx(supply.SUPPLIER_CHOICE[0], abs=0.01)
    eligible = freq[[0, 2, 3]]  # local 0.96 > regional 0.88 > import 0.82
    assert eligible[0] > eligible[1] > eligible[2]
    assert freq[1] == 0  # Nestle does not sell flour


def test_fresh_dairy_never_comes_from_importers():
    dairy = [k for k, s in enumerate(SKUS) if s.category == "Dairy"]
    rng = np.random.default_rng(6)
    chosen = supply.choose_suppliers(rng, np.repeat(dairy, 10_000))
    assert set(supply.SUPPLIER_IDS[np.unique(chosen)]) <= {"SUP-LOCAL-001", "SUP-LOCAL-002"}


def test_planned_lead_time_normal_with_floor():
    rng = np.random.default_rng(7)
    supplier = np.repeat(np.arange(len(SUPPLIERS)), 50_000)
    lead = supply.planned_lead_days(rng, supplier)
    assert lead.min() >= supply.MIN_LEAD_DAYS
    for k, s in enumerate(SUPPLIERS):
        assert lead[supplier == k].mean() == pytest.approx(s.avg_lead_time_days, rel=0.03)


def test_delays_exponential_and_likelier_for_unreliable_suppliers():
    rng = np.random.default_rng(8)
    supplier = np.repeat(np.arange(len(SUPPLIERS)), 50_000)
    delay = supply.delay_days(rng, supplier)
    late_share = np.array([np.mean(delay[supplier == k] > 0) for k in range(len(SUPPLIERS))])
    assert late_share == pytest.approx(supply.DELAY_PROBABILITY, abs=0.01)
    reliability = np.array([s.reliability_score for s in SUPPLIERS])
    assert list(np.argsort(-reliability)) == list(np.argsort(late_share))
    for k in range(len(SUPPLIERS)):
        positive = delay[(supplier == k) & (delay > 0)]
        assert positive.mean() == pytest.approx(supply.DELAY_MEAN[k], rel=0.05)
        assert np.median(positive) == pytest.approx(supply.DELAY_MEAN[k] * np.log(2), rel=0.07)  # exponential


def test_lead_time_moments_match_monte_carlo():
    rng = np.random.default_rng(9)
    mean, var = supply.lead_time_moments()
    sku = np.full(200_000, 0)
    chosen = supply.choose_suppliers(rng, sku)
    actual = supply.planned_lead_days(rng, chosen) + supply.delay_days(rng, chosen)
    assert actual.mean() == pytest.approx(mean[0], rel=0.02)
    assert actual.var() == pytest.approx(var[0], rel=0.05)
