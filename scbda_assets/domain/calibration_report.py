"""Measure the steady state of the simulation (SPEC §7 ranges): a pure run over simulated days, no database.

Used by the calibration test and to produce the figures in docs/calibration.md:
    .venv/bin/python -m scbda_assets.domain.calibration_report --rate 1500 --days 30
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

import numpy as np

from scbda_assets.domain import demand, simulation
from scbda_assets.domain.calibration import calibrate
from scbda_assets.domain.reference import DCS, RULES, SUPPLIERS

KPI_WINDOW_MINUTES = 15


@dataclasses.dataclass
class Report:
    rate: float
    days: float
    orders_per_minute: float
    shipments_per_day: float
    unit_fill_rate: float
    utilization: dict[str, dict[str, float]]  # dc_id -> min/p05/mean/p95/max over hourly samples
    warning_fraction_mean: float  # pairs under 7 days of cover (KPI formula: 15-min requested × 96), hourly mean
    warning_fraction_range: tuple[float, float]  # min/max of that hourly fraction
    warning_fraction_planning: float  # same with planning demand per day instead of the 15-min window
    max_open_orders_per_pair: int
    mean_open_orders_per_pair: float
    on_time_rate: dict[str, float]
    received: dict[str, int]
    balance_violations: int
    negative_stock: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run(rate: float, *, days: float = 30, step_minutes: int = 1, seed: int = 7,
        start: dt.datetime = dt.datetime(2026, 5, 1), warmup_days: float = 2) -> Report:
    """Simulate ``days`` after ``warmup_days`` at ``rate``; hourly samples of stock; totals over the measured days."""
    cal = calibrate(float(rate))
    rng = np.random.default_rng(seed)
    state = simulation.initial_state(start, cal, rng)
    step = np.timedelta64(step_minutes, "m")
    total_steps = int((days + warmup_days) * 1440 // step_minutes)
    warmup_steps = int(warmup_days * 1440 // step_minutes)
    window_steps = max(1, KPI_WINDOW_MINUTES // step_minutes)
    recent = np.zeros((window_steps, demand.N_PAIRS))
    capacity = cal.dc_capacity_m3
    storage = demand.SKU_STORAGE[demand.PAIR_SKU]
    planning_daily = cal.pair_units_per_day
    requested = fulfilled = 0
    util, warn, warn_plan, open_counts = [], [], [], []
    created: dict[str, tuple[int, np.datetime64, np.datetime64]] = {}
    on_time = np.zeros(len(SUPPLIERS))
    received = np.zeros(len(SUPPLIERS))
    balance_violations = negative = 0
    shipments = 0
    for i in range(total_steps):
        new_state, ev = simulation.step(state, state.as_of + step, cal, rng)
        delta = (np.bincount(ev.recv_pair, ev.recv_qty, demand.N_PAIRS)
                 - np.bincount(ev.order_pair, ev.fulfilled, demand.N_PAIRS))
        balance_violations += int(np.any(new_state.on_hand - ev.snap_on_hand != delta))
        negative += int(np.any(new_state.on_hand < 0))
        recent[i % window_steps] = np.bincount(ev.order_pair, ev.requested, demand.N_PAIRS)
        # New purchase orders are appended to the state's arrays: their actual arrivals are the last ones.
        arrivals = new_state.po_arrival[len(new_state.po_id) - len(ev.ship_id):]
        for sid, sup, exp, arr in zip(ev.ship_id, ev.ship_supplier, ev.ship_expected, arrivals):
            created[sid] = (int(sup), exp, arr)
        if i >= warmup_steps:
            requested += int(ev.requested.sum())
            fulfilled += int(ev.fulfilled.sum())
            shipments += len(ev.ship_id)
            for sid in ev.recv_id:
                if sid in created:
                    sup, exp, arr = created[sid]
                    received[sup] += 1
                    on_time[sup] += arr <= exp
            minute = int((ev.start - ev.start.astype("datetime64[h]")) / np.timedelta64(1, "m"))
            if minute < step_minutes:  # hourly sample of the opening stock
                volume = np.bincount(demand.PAIR_DC, ev.snap_on_hand * storage, len(DCS))
                util.append(volume / capacity)
                per_day = recent.sum(axis=0) * (1440 / (window_steps * step_minutes))
                with np.errstate(divide="ignore", invalid="ignore"):
                    cover = np.where(per_day > 0, ev.snap_on_hand / per_day, np.inf)
                warn.append(float(np.mean(cover < RULES.stockout_warning_days)))
                warn_plan.append(float(np.mean(ev.snap_on_hand / planning_daily < RULES.stockout_warning_days)))
                open_counts.append(np.bincount(state.po_pair, minlength=demand.N_PAIRS))
        state = new_state
    util = np.array(util)
    opens = np.array(open_counts)
    return Report(
        rate=float(rate),
        days=float(days),
        orders_per_minute=round(cal.orders_per_minute, 3),
        shipments_per_day=round(shipments / days, 2),
        unit_fill_rate=fulfilled / requested if requested else float("nan"),
        utilization={
            dc.dc_id: {
                "min": float(util[:, k].min()),
                "p05": float(np.percentile(util[:, k], 5)),
                "mean": float(util[:, k].mean()),
                "p95": float(np.percentile(util[:, k], 95)),
                "max": float(util[:, k].max()),
            }
            for k, dc in enumerate(DCS)
        },
        warning_fraction_mean=float(np.mean(warn)),
        warning_fraction_range=(float(np.min(warn)), float(np.max(warn))),
        warning_fraction_planning=float(np.mean(warn_plan)),
        max_open_orders_per_pair=int(opens.max()),
        mean_open_orders_per_pair=float(opens.mean()),
        on_time_rate={s.supplier_id: float(on_time[k] / received[k]) if received[k] else float("nan")
                      for k, s in enumerate(SUPPLIERS)},
        received={s.supplier_id: int(received[k]) for k, s in enumerate(SUPPLIERS)},
        balance_violations=balance_violations,
        negative_stock=negative,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Steady-state figures of the simulation (no database).")
    parser.add_argument("--rate", type=float, action="append", help="events per minute (repeatable)")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--step-minutes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for rate in args.rate or [1500.0]:
        print(json.dumps(run(rate, days=args.days, step_minutes=args.step_minutes, seed=args.seed).as_dict(),
                         indent=1, default=float))


if __name__ == "__main__":
    main()
