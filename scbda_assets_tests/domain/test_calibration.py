"""Calibration: sizing follows demand (same steady state at any rate) and the SPEC §7 ranges hold over 30 days."""

from __future__ import annotations

import numpy as np
import pytest

from scbda_assets.domain import calibration, calibration_report, demand
from scbda_assets.domain.reference import DCS, SKUS, SUPPLIERS, dimension_documents


def test_sizing_scales_with_rate():
    low, high = calibration.calibrate(30.0), calibration.calibrate(1500.0)
    assert high.orders_per_minute + calibration.shipments_per_minute() == pytest.approx(1500.0)
    ratio = high.pair_units_per_day / low.pair_units_per_day
    assert ratio == pytest.approx(np.full(demand.N_PAIRS, ratio[0]))
    for field in ("safety_stock", "reorder_point", "order_qty"):
        scaled = getattr(high.policy(), field) / getattr(low.policy(), field)
        assert scaled == pytest.approx(ratio, rel=0.01), field
    assert high.dc_capacity_m3 / low.dc_capacity_m3 == pytest.approx(np.full(len(DCS), ratio[0]), rel=0.01)


def test_ramadan_policy_holds_more_stock():
    cal = calibration.calibrate(1500.0)
    normal, ramadan = cal.policy(1.0), cal.policy(1.8)
    assert np.all(ramadan.reorder_point > normal.reorder_point)
    assert np.all(ramadan.order_qty >= normal.order_qty)


def test_dimension_documents_keep_ids_and_carry_calibrated_values():
    for name in ("regions_dim", "dcs_dim", "skus_dim", "suppliers_dim"):
        design = dimension_documents(name)
        calibrated = calibration.dimension_documents(name, 1500.0)
        key = calibration.DIMENSION_KEYS[name]
        assert [d[key] for d in calibrated] == [d[key] for d in design]
        for d, c in zip(design, calibrated):
            for field, value in d.items():
                if field not in ("capacity_m3", "coverage_days"):
                    assert c[field] == value, (name, field)
    dcs = calibration.dimension_documents("dcs_dim", 1500.0)
    assert [d["capacity_m3"] for d in dcs] == list(calibration.calibrate(1500.0).dc_capacity_m3)
    assert [d["design_capacity_m3"] for d in dcs] == [d.capacity_m3 for d in DCS]
    skus = calibration.dimension_documents("skus_dim", 30.0)
    assert [d["design_coverage_days"] for d in skus] == [s.coverage_days for s in SKUS]


def test_expected_utilization_matches_targets():
    cal = calibration.calibrate(1500.0)
    volume = np.bincount(demand.PAIR_DC, cal.expected_on_hand() * demand.SKU_STORAGE[demand.PAIR_SKU], len(DCS))
    assert volume / cal.dc_capacity_m3 == pytest.approx(calibration.TARGET_UTILIZATION, rel=0.01)
    assert np.all((calibration.TARGET_UTILIZATION > 0.5) & (calibration.TARGET_UTILIZATION < 0.8))


@pytest.mark.slow
@pytest.mark.parametrize("rate", [30.0, 1500.0])
def test_thirty_day_steady_state_within_spec_ranges(rate):
    # 5-minute steps: same pure step function; the statistics of 1-minute steps hold (docs/calibration.md).
    report = calibration_report.run(rate, days=30, step_minutes=5, seed=7)
    assert 0.93 <= report.unit_fill_rate <= 0.995
    for dc, stats in report.utilization.items():
        assert 0.40 <= stats["p05"] and stats["p95"] <= 0.95, (dc, stats)
        assert 0.35 <= stats["min"] and stats["max"] <= 1.0, (dc, stats)
    assert 0.05 <= report.warning_fraction_mean <= 0.30
    assert 0.05 <= report.warning_fraction_planning <= 0.30
    assert report.max_open_orders_per_pair <= 4
    on_time = [report.on_time_rate[s.supplier_id] for s in SUPPLIERS]  # listed by falling reliability
    assert on_time == sorted(on_time, reverse=True)
    assert min(report.received.values()) >= 5
    assert report.balance_violations == 0 and report.negative_stock == 0
