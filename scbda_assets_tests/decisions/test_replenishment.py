"""Safety stock, reorder point and the to-order list against the textbook formula computed by hand."""

from __future__ import annotations

import math

import numpy as np

from scbda_assets.decisions import replenishment
from scbda_assets.domain import calibration


def test_safety_stock_and_reorder_point_follow_the_formula():
    rec = replenishment.recommend([100.0], [30.0], [4.0], [1.5], [2.0], service_level=0.95)
    z = 1.6448536269514722
    safety = z * math.sqrt(4 * 30**2 + 100**2 * 1.5**2)  # = 1.645 × √(3600 + 22500)
    assert rec.safety_stock.tolist() == [math.ceil(safety)]
    assert rec.reorder_point.tolist() == [math.ceil(400 + safety)]
    assert rec.order_qty.tolist() == [200.0]


def test_to_order_now_needs_a_low_position_and_nothing_in_transit():
    got = replenishment.to_order_now(np.array([10, 10, 50, 10]), np.array([0, 5, 0, 0]), np.array([12, 20, 20, 10]))
    assert got.tolist() == [True, False, False, True]


def test_policy_for_simulation_has_the_simulators_shape():
    cal = calibration.calibrate(1500.0)
    policy = replenishment.policy_for_simulation(cal)
    built_in = cal.policy()
    assert policy.reorder_point.shape == built_in.reorder_point.shape
    assert (policy.reorder_point > policy.safety_stock).all() and (policy.order_qty >= 1).all()
