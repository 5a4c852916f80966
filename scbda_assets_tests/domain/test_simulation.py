"""The pure simulation step: arrivals, fulfilment within stock, exact balance, replenishment, late events."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scbda_assets.domain import demand, simulation
from scbda_assets.domain.calibration import calibrate

T0 = np.datetime64("2026-05-05T10:00", "ms")  # Tuesday 15:00 Karachi, outside Ramadan
MINUTE = np.timedelta64(1, "m")


def _run(state, cal, rng, minutes, **kwargs):
    for _ in range(minutes):
        previous = state
        state, events = simulation.step(previous, previous.as_of + MINUTE, cal, rng, **kwargs)
        yield previous, state, events


def test_order_counts_follow_the_contextual_rate():
    cal = calibrate(600.0)
    rng = np.random.default_rng(10)
    state = simulation.initial_state(T0, cal, rng)
    counts = [len(ev.order_pair) for _, _, ev in _run(state, cal, rng, 60)]
    expected = cal.orders_per_minute * demand.demand_multiplier(T0 + np.timedelta64(30, "s"))
    assert np.mean(counts) == pytest.approx(expected, rel=0.06)


def test_arrival_times_spread_inside_the_interval():
    cal = calibrate(1500.0)
    rng = np.random.default_rng(11)
    state = simulation.initial_state(T0, cal, rng)
    _, events = simulation.step(state, T0 + MINUTE, cal, rng)
    assert np.all(events.order_ts >= T0) and np.all(events.order_ts < T0 + MINUTE)
    assert len(np.unique(events.order_ts)) > 0.5 * len(events.order_ts)  # not one timestamp per batch
    seconds = (events.order_ts - T0) / np.timedelta64(1, "s")
    assert seconds.min() < 5 and seconds.max() > 55


def test_fulfilment_never_above_stock_and_losses_recorded():
    cal = calibrate(1500.0)
    rng = np.random.default_rng(12)
    state = simulation.initial_state(T0, cal, rng)
    low = dataclasses.replace(state, on_hand=np.where(np.arange(demand.N_PAIRS) % 2 == 0, 3, 0).astype(np.int64))
    new, ev = simulation.step(low, T0 + MINUTE, cal, rng)
    served = np.bincount(ev.order_pair, ev.fulfilled, demand.N_PAIRS)
    asked = np.bincount(ev.order_pair, ev.requested, demand.N_PAIRS)
    assert np.all(served <= low.on_hand)
    assert np.all(served == np.minimum(asked, low.on_hand))  # nothing is held back while stock lasts
    assert np.all(ev.fulfilled <= ev.requested) and np.all(ev.fulfilled >= 0)
    assert ev.lost.sum() > 0 and np.all(new.on_hand >= 0)


def test_balance_exact_and_never_negative_over_three_days():
    cal = calibrate(30.0)
    rng = np.random.default_rng(13)
    state = simulation.initial_state(T0, cal, rng)
    received = 0
    for previous, new, ev in _run(state, cal, rng, 1440 * 3, late_fraction=0.1):
        delta = np.bincount(ev.recv_pair, ev.recv_qty, demand.N_PAIRS) - np.bincount(
            ev.order_pair, ev.fulfilled, demand.N_PAIRS
        )
        assert np.array_equal(new.on_hand - previous.on_hand, delta)
        assert np.array_equal(ev.snap_on_hand, previous.on_hand)
        assert np.all(new.on_hand >= 0)
        received += len(ev.recv_id)
    assert received > 0  # receipts happened, so the balance covered both directions


def test_position_based_reordering_places_no_duplicate_orders():
    cal = calibrate(30.0)
    rng = np.random.default_rng(14)
    state = simulation.initial_state(T0, cal, rng)
    policy = cal.policy()
    created = 0
    for previous, new, ev in _run(state, cal, rng, 1440 * 2):
        assert len(np.unique(ev.ship_pair)) == len(ev.ship_pair)  # at most one purchase order per pair and step
        position = new.on_hand + new.on_order
        # After ordering, the position is back above the reorder point: the need is covered by what is in transit.
        assert np.all(position[ev.ship_pair] > policy.reorder_point[ev.ship_pair])
        # Pairs above the reorder point (counting stock in transit) never order.
        before = previous.on_hand + previous.on_order
        calm = before - np.bincount(ev.order_pair, ev.fulfilled, demand.N_PAIRS) > policy.reorder_point
        assert not np.any(np.isin(ev.ship_pair, np.flatnonzero(calm)))
        assert np.bincount(new.po_pair, minlength=demand.N_PAIRS).max() <= 4
        created += len(ev.ship_pair)
    assert created > 0


def test_receipts_arrive_at_actual_time_after_expected_or_on_time():
    cal = calibrate(30.0)
    rng = np.random.default_rng(15)
    state = simulation.initial_state(T0, cal, rng)
    expected = {}
    checked = 0
    for _, _, ev in _run(state, cal, rng, 1440 * 3):
        expected.update(zip(ev.ship_id, ev.ship_expected))
        assert np.all(ev.ship_expected - ev.ship_ts >= np.timedelta64(12, "h"))
        for sid, ts in zip(ev.recv_id, ev.recv_ts):
            assert ev.start - MINUTE < ts < ev.end
            assert ts >= expected[sid]
            checked += 1
    assert checked > 10


def test_same_state_and_seed_reproduce_the_same_events():
    cal = calibrate(1500.0)
    state = simulation.initial_state(T0, cal, np.random.default_rng(16))
    a_state, a = simulation.step(state, T0 + MINUTE, cal, np.random.default_rng([1, 2]), late_fraction=0.2)
    b_state, b = simulation.step(state, T0 + MINUTE, cal, np.random.default_rng([1, 2]), late_fraction=0.2)
    for field in ("order_pair", "order_ts", "requested", "fulfilled", "unit_price", "order_release"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert np.array_equal(a_state.on_hand, b_state.on_hand)
    assert np.array_equal(state.on_hand, simulation.initial_state(T0, cal, np.random.default_rng(16)).on_hand)


def test_late_events_fraction_and_delay():
    cal = calibrate(1500.0)
    rng = np.random.default_rng(17)
    state = simulation.initial_state(T0, cal, rng)
    delays, total = [], 0
    for _, _, ev in _run(state, cal, rng, 30, late_fraction=0.05):
        d = (ev.order_release - ev.order_ts) / np.timedelta64(1, "ms")
        assert np.all(d >= 0) and np.all(d <= simulation.LATE_MAX_MS + 1)
        delays.extend(d[d > 0])
        total += len(d)
    assert len(delays) / total == pytest.approx(0.05, abs=0.005)
    assert np.mean(delays) == pytest.approx(simulation.LATE_MEAN_MS, rel=0.08)


def test_no_late_events_when_fraction_zero_and_empty_interval_rejected():
    cal = calibrate(1500.0)
    rng = np.random.default_rng(18)
    state = simulation.initial_state(T0, cal, rng)
    _, ev = simulation.step(state, T0 + MINUTE, cal, rng, late_fraction=0.0)
    assert np.array_equal(ev.order_release, ev.order_ts)
    with pytest.raises(ValueError, match="not after"):
        simulation.step(state, T0, cal, rng)


def test_tiny_rate_gives_quiet_minutes_with_snapshots():
    cal = calibrate(0.01)
    rng = np.random.default_rng(19)
    state = simulation.initial_state(T0, cal, rng)
    new, ev = simulation.step(state, T0 + MINUTE, cal, rng)
    assert len(ev.order_pair) <= 1
    assert len(ev.snap_on_hand) == demand.N_PAIRS
    assert np.all(new.on_hand >= 0)
