"""The simulation of the chain as a pure function: ``step(state, end, calibration, rng, ...) -> (state, events)``.

One step covers the half-open interval [state.as_of, end):
1. the opening snapshot of every (sku, dc) pair at ``state.as_of`` (stock after every event before it);
2. orders: Poisson counts per pair (rate × time-of-day/weekend/Ramadan multiplier × a regional volatility draw),
   arrival times uniform inside the interval, served first come first served from on-hand stock (never more than
   on hand; the rest is lost, with its revenue);
3. receipts: purchase orders whose actual arrival falls before ``end`` are received (after the interval's orders,
   so no order is served from stock that had not arrived yet);
4. replenishment: where the inventory position (on hand + on order) is at or below the reorder point, one purchase
   order brings it up to reorder point + order quantity; position counts what is in transit, so no duplicate order
   is placed for a need already ordered;
5. late arrival: a fraction of orders and shipments get a release time after their event time (exponential delay,
   capped), used by the writer; the stock effect stays at event time, so the balance is exact:
   on_hand(end) = on_hand(start) − Σ fulfilled + Σ received.
The state is plain arrays; the same code drives the live minute stream, backfill and the calibration runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from scbda_assets.domain import demand, supply
from scbda_assets.domain.calibration import Calibration
from scbda_assets.domain.reference import DCS, RAMADAN_RANGES, SKUS

MS_PER_DAY = 86_400_000
LATE_MEAN_MS = 90_000  # mean write delay of a late event
LATE_MAX_MS = 15 * 60_000  # cap: always inside the archive safety horizon (>= 16 min)

PAIR_SKU_ID = np.array([SKUS[k].sku_id for k in demand.PAIR_SKU])
PAIR_DC_ID = np.array([DCS[d].dc_id for d in demand.PAIR_DC])


@dataclasses.dataclass
class State:
    """Stock of every pair after all events before ``as_of``, and the purchase orders in transit."""

    as_of: np.datetime64  # datetime64[ms], UTC
    on_hand: np.ndarray  # int64 per pair
    po_id: np.ndarray  # str per open purchase order
    po_pair: np.ndarray  # int64
    po_qty: np.ndarray  # int64
    po_arrival: np.ndarray  # datetime64[ms]: actual arrival (unknown to the documents until received)

    @property
    def on_order(self) -> np.ndarray:
        return np.bincount(self.po_pair, weights=self.po_qty, minlength=demand.N_PAIRS).astype(np.int64)


@dataclasses.dataclass
class Events:
    """Everything that happened in [start, end), as arrays (documents are built by the writer)."""

    start: np.datetime64
    end: np.datetime64
    # opening snapshot (at start)
    snap_on_hand: np.ndarray
    snap_on_order: np.ndarray
    snap_safety_stock: np.ndarray
    snap_reorder_point: np.ndarray
    # orders, sorted by (pair, order_ts)
    order_pair: np.ndarray
    order_ts: np.ndarray
    requested: np.ndarray
    fulfilled: np.ndarray
    unit_price: np.ndarray
    priority: np.ndarray
    order_release: np.ndarray
    # purchase orders created (shipments in transit)
    ship_id: np.ndarray
    ship_pair: np.ndarray
    ship_supplier: np.ndarray
    ship_qty: np.ndarray
    ship_ts: np.ndarray
    ship_planned_days: np.ndarray
    ship_expected: np.ndarray
    ship_release: np.ndarray
    # receipts of earlier purchase orders
    recv_id: np.ndarray
    recv_pair: np.ndarray
    recv_qty: np.ndarray
    recv_ts: np.ndarray

    @property
    def lost(self) -> np.ndarray:
        return self.requested - self.fulfilled


def to_datetime64(value: dt.datetime | np.datetime64) -> np.datetime64:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return np.datetime64(value, "ms")
    return value.astype("datetime64[ms]")


def interval_stamp(start: np.datetime64) -> str:
    """Minute stamp used in business ids (intervals start on whole minutes)."""
    return np.datetime_as_string(start, unit="m").replace("-", "").replace("T", "").replace(":", "")


def initial_state(as_of: dt.datetime | np.datetime64, calibration: Calibration, rng: np.random.Generator) -> State:
    """Steady-state-like start: each pair's stock uniform between its reorder point and order-up-to level."""
    policy = calibration.policy()
    on_hand = policy.reorder_point + np.floor(rng.random(demand.N_PAIRS) * policy.order_qty).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    return State(to_datetime64(as_of), on_hand, np.zeros(0, dtype=object), empty, empty.copy(),
                 np.zeros(0, dtype="datetime64[ms]"))


def step(
    state: State,
    end: dt.datetime | np.datetime64,
    calibration: Calibration,
    rng: np.random.Generator,
    *,
    late_fraction: float = 0.0,
    ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES,
) -> tuple[State, Events]:
    """Advance ``state`` to ``end``; returns the new state and the interval's events. ``state`` is not modified."""
    start, end = state.as_of, to_datetime64(end)
    duration_ms = int((end - start) / np.timedelta64(1, "ms"))
    if duration_ms <= 0:
        raise ValueError(f"interval end {end} is not after its start {start}")
    opening_policy = calibration.policy(demand.season_multiplier(demand.local_date(start), ramadan))
    on_hand = state.on_hand.copy()
    snap_on_order = state.on_order

    # Orders.
    multiplier = demand.demand_multiplier(start + np.timedelta64(duration_ms // 2, "ms"), ramadan)
    lam = calibration.pair_orders_per_minute * multiplier * demand.volatility_draw(rng) * (duration_ms / 60_000)
    counts = rng.poisson(lam)
    order_pair = np.repeat(np.arange(demand.N_PAIRS), counts)
    offset_ms = rng.integers(0, duration_ms, size=len(order_pair))
    order_idx = np.lexsort((offset_ms, order_pair))
    order_pair, offset_ms = order_pair[order_idx], offset_ms[order_idx]
    sku = demand.PAIR_SKU[order_pair]
    requested = demand.order_quantities(rng, sku)
    # First come, first served per pair: units requested before this order (same pair) come out of stock first.
    cum = np.concatenate(([0], np.cumsum(requested)))  # cum[i] = units requested by orders before order i
    group_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    before = cum[:-1] - np.repeat(cum[group_first], counts)
    fulfilled = np.clip(on_hand[order_pair] - before, 0, requested)
    on_hand -= np.bincount(order_pair, weights=fulfilled, minlength=demand.N_PAIRS).astype(np.int64)
    unit_price = demand.unit_prices(rng, sku)
    priority = demand.priorities(rng, sku, unit_price * requested)

    # Receipts (every purchase order due before the end; after a gap, overdue ones arrive in the first interval).
    due = state.po_arrival < end
    on_hand += np.bincount(state.po_pair[due], weights=state.po_qty[due], minlength=demand.N_PAIRS).astype(np.int64)
    keep = ~due
    po_id, po_pair, po_qty, po_arrival = (
        state.po_id[keep], state.po_pair[keep], state.po_qty[keep], state.po_arrival[keep]
    )

    # Replenishment on the inventory position.
    policy = calibration.policy(demand.season_multiplier(demand.local_date(end), ramadan))
    on_order = np.bincount(po_pair, weights=po_qty, minlength=demand.N_PAIRS).astype(np.int64)
    position = on_hand + on_order
    ship_pair = np.flatnonzero(position <= policy.reorder_point)
    ship_qty = policy.reorder_point[ship_pair] + policy.order_qty[ship_pair] - position[ship_pair]
    supplier = supply.choose_suppliers(rng, demand.PAIR_SKU[ship_pair])
    planned_days = np.round(supply.planned_lead_days(rng, supplier), 3)
    ship_ts = start + rng.integers(0, duration_ms, size=len(ship_pair)).astype("timedelta64[ms]")
    expected = ship_ts + np.round(planned_days * MS_PER_DAY).astype("timedelta64[ms]")
    arrival = expected + np.round(supply.delay_days(rng, supplier) * MS_PER_DAY).astype("timedelta64[ms]")
    stamp = interval_stamp(start)
    ship_id = np.array([f"SHP-{stamp}-{PAIR_SKU_ID[p]}-{PAIR_DC_ID[p]}" for p in ship_pair], dtype=object)

    # Late arrival of business events (write time only).
    order_ts = start + offset_ms.astype("timedelta64[ms]")
    order_release = _release_times(rng, order_ts, late_fraction)
    ship_release = _release_times(rng, ship_ts, late_fraction)

    events = Events(
        start=start,
        end=end,
        snap_on_hand=state.on_hand,
        snap_on_order=snap_on_order,
        snap_safety_stock=opening_policy.safety_stock,
        snap_reorder_point=opening_policy.reorder_point,
        order_pair=order_pair,
        order_ts=order_ts,
        requested=requested,
        fulfilled=fulfilled,
        unit_price=unit_price,
        priority=priority,
        order_release=order_release,
        ship_id=ship_id,
        ship_pair=ship_pair,
        ship_supplier=supplier,
        ship_qty=ship_qty,
        ship_ts=ship_ts,
        ship_planned_days=planned_days,
        ship_expected=expected,
        ship_release=ship_release,
        recv_id=state.po_id[due],
        recv_pair=state.po_pair[due],
        recv_qty=state.po_qty[due],
        recv_ts=state.po_arrival[due],
    )
    new_state = State(
        as_of=end,
        on_hand=on_hand,
        po_id=np.concatenate((po_id, ship_id)),
        po_pair=np.concatenate((po_pair, ship_pair)),
        po_qty=np.concatenate((po_qty, ship_qty)),
        po_arrival=np.concatenate((po_arrival, arrival)),
    )
    return new_state, events


def _release_times(rng: np.random.Generator, event_ts: np.ndarray, fraction: float) -> np.ndarray:
    """When each event reaches the store: its event time, or later for a ``fraction`` of them."""
    if fraction <= 0 or len(event_ts) == 0:
        return event_ts
    late = rng.random(len(event_ts)) < fraction
    delay = np.minimum(rng.exponential(LATE_MEAN_MS, size=len(event_ts)), LATE_MAX_MS).astype(np.int64) + 1
    return event_ts + np.where(late, delay, 0).astype("timedelta64[ms]")
