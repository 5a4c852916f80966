"""Backtest on the simulated chain (pure: the domain simulation, seeded; no services). The figures of
docs/forecast.md: ``python -m scbda_assets.decisions.backtest --days 30``.

Simulates warm-up + scored days + a tail (so every horizon closes), minute by minute as the live stream does, then
at every whole hour of the scored days, per (sku, dc):
- forecasts the next 24 h by hour and the next 7 days by day from the hours before (``forecast.fit``), beside the
  7-day mean and the seed design's 15 min × 96, scored against realised demand and the simulator's true rate;
- the stockout probability before the next receipt (expected arrival of the earliest purchase order in transit,
  else the SKU's lead time) from the forecast and the count distribution, beside the seed rule (days of cover < 7)
  and the superseded normal formula; outcome: the pair lost sales before its next receipt actually arrived.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

import numpy as np
from scipy import stats

from scbda_assets.decisions import forecast, risk, scoring
from scbda_assets.domain import calibration, demand, simulation
from scbda_assets.domain.reference import SKUS

MINUTE = np.timedelta64(1, "m")
LEAD_DAYS = np.array([s.lead_time_days for s in SKUS], dtype=float)[demand.PAIR_SKU]


@dataclasses.dataclass
class History:
    """Per-minute requested and lost units per pair, and hourly observations of stock and purchase orders."""

    start: np.datetime64  # first minute (datetime64[m])
    requested: np.ndarray  # (minutes, pairs)
    lost: np.ndarray  # (minutes, pairs)
    on_hand: np.ndarray  # (hours, pairs) opening stock of each hour
    next_expected: np.ndarray  # (hours, pairs) minutes from the hour to the earliest expected receipt (nan: none)
    next_actual: np.ndarray  # (hours, pairs) minutes from the hour to the earliest actual receipt (nan: none)
    pair_orders_per_minute: np.ndarray

    def hours(self, first: int, count: int) -> np.ndarray:
        return self.start.astype("datetime64[h]") + (first + np.arange(count)) * forecast.HOUR

    def hourly(self, values: np.ndarray) -> np.ndarray:
        """(pairs, hours) sums of a per-minute array."""
        return values[: len(values) // 60 * 60].reshape(-1, 60, values.shape[1]).sum(axis=1).T


def simulate(days: float, *, rate: float = 1500.0, seed: int = 11,
             start: dt.datetime = dt.datetime(2026, 5, 4)) -> History:
    cal = calibration.calibrate(rate)
    rng = np.random.default_rng(seed)
    state = simulation.initial_state(start, cal, rng)
    minutes = int(days * 1440)
    requested = np.zeros((minutes, demand.N_PAIRS), dtype=np.int32)
    lost = np.zeros_like(requested)
    on_hand, nxt_exp, nxt_act = [], [], []
    expected: dict[str, np.datetime64] = {}
    for i in range(minutes):
        if i % 60 == 0:
            on_hand.append(state.on_hand.copy())
            exp = np.array([expected[p] for p in state.po_id], dtype="datetime64[ms]")
            nxt_exp.append(_earliest(state.po_pair, exp, state.as_of))
            nxt_act.append(_earliest(state.po_pair, state.po_arrival, state.as_of))
        state, ev = simulation.step(state, state.as_of + MINUTE, cal, rng)
        requested[i] = np.bincount(ev.order_pair, ev.requested, demand.N_PAIRS)
        lost[i] = np.bincount(ev.order_pair, ev.lost, demand.N_PAIRS)
        expected.update(zip(ev.ship_id, ev.ship_expected))
    return History(np.datetime64(start, "m"), requested, lost, np.array(on_hand), np.array(nxt_exp),
                   np.array(nxt_act), cal.pair_orders_per_minute)


def _earliest(pairs: np.ndarray, times: np.ndarray, now: np.datetime64) -> np.ndarray:
    out = np.full(demand.N_PAIRS, np.nan)
    if len(pairs):
        minutes = (times - now) / np.timedelta64(1, "m")
        np.fmin.at(out, pairs, minutes)
    return out


def score(history: History, first_day: int, days: int) -> dict:
    """Scores over the origins at every whole hour of days [first_day, first_day + days)."""
    hourly_units = history.hourly(history.requested)  # (pairs, hours)
    true_rate = demand.expected_hourly_units(history.pair_orders_per_minute, history.hours(0, hourly_units.shape[1]))
    f24 = {"forecast": [], "mean_7d": [], "live_15m_x96": []}
    actual24, true24 = [], []
    f7 = {"forecast": [], "mean_7d": []}
    actual7, true7 = [], []
    prob, seed_rule, normal, outcome = [], [], [], []
    for origin in range(first_day * 24, (first_day + days) * 24):
        past = slice(0, origin)
        model = forecast.fit(hourly_units[:, past], history.hours(0, origin))
        ahead = history.hours(origin, 7 * 24)
        hourly = model.hourly(ahead)
        mean_7d = hourly_units[:, origin - 168:origin].sum(axis=1) / 168
        live = history.requested[origin * 60 - 15:origin * 60].sum(axis=0) * 4.0
        f24["forecast"].append(hourly[:, :24])
        f24["mean_7d"].append(np.repeat(mean_7d[:, None], 24, axis=1))
        f24["live_15m_x96"].append(np.repeat(live[:, None], 24, axis=1))
        actual24.append(hourly_units[:, origin:origin + 24])
        true24.append(true_rate[:, origin:origin + 24])
        f7["forecast"].append(hourly.reshape(-1, 7, 24).sum(axis=2))
        f7["mean_7d"].append(np.repeat(mean_7d[:, None] * 24, 7, axis=1))
        actual7.append(hourly_units[:, origin:origin + 168].reshape(-1, 7, 24).sum(axis=2))
        true7.append(true_rate[:, origin:origin + 168].reshape(-1, 7, 24).sum(axis=2))

        # Probability of a stockout before the next receipt.
        stock = history.on_hand[origin].astype(float)
        horizon_min = np.where(np.isnan(history.next_expected[origin]), LEAD_DAYS * 1440,
                               np.maximum(history.next_expected[origin], 0))
        cum = forecast.cumulative_from(model, ahead[0].astype("datetime64[ms]"), 30 * 24)
        hours_ahead = np.minimum(horizon_min / 60, 30 * 24)
        lo = np.floor(hours_ahead).astype(int)
        hi = np.minimum(lo + 1, 30 * 24)
        rows = np.arange(demand.N_PAIRS)
        mu = cum[rows, lo] + (hours_ahead - lo) * (cum[rows, hi] - cum[rows, lo])
        ratio = forecast.variance_ratio(model, mu)
        prob.append(risk.stockout_probability(stock, mu, ratio))
        per_day = mean_7d * 24
        with np.errstate(divide="ignore", invalid="ignore"):
            cover = np.where(per_day > 0, stock / per_day, np.inf)
        seed_rule.append((cover < 7).astype(float))
        daily = hourly_units[:, (origin // 24 - 7) * 24:(origin // 24) * 24].reshape(-1, 7, 24).sum(axis=2)
        sd = daily.std(axis=1, ddof=1) * np.sqrt(horizon_min / 1440)
        mean_h = per_day * horizon_min / 1440
        with np.errstate(divide="ignore", invalid="ignore"):
            normal.append(np.where(sd > 0, stats.norm.sf((stock - mean_h) / sd), (stock < mean_h).astype(float)))
        until = np.where(np.isnan(history.next_actual[origin]), LEAD_DAYS * 1440,
                         np.maximum(history.next_actual[origin], 0))
        outcome.append([history.lost[origin * 60:origin * 60 + int(np.ceil(u)), p].sum() > 0
                        for p, u in enumerate(until)])

    actual24, true24 = np.concatenate(actual24, axis=1), np.concatenate(true24, axis=1)
    actual7, true7 = np.concatenate(actual7, axis=1), np.concatenate(true7, axis=1)
    p, y = np.concatenate(prob), np.concatenate(outcome).astype(float)
    result = {"days": days, "origins": days * 24, "pairs": demand.N_PAIRS, "forecast_24h": {}, "forecast_7d": {}}
    for name, values in f24.items():
        fc = np.concatenate(values, axis=1)
        result["forecast_24h"][name] = {"wape_vs_true": scoring.wape(fc, true24), "wape": scoring.wape(fc, actual24),
                                        "bias": scoring.bias(fc, actual24)}
    result["forecast_24h"]["true_rate"] = {"wape": scoring.wape(true24, actual24), "bias": scoring.bias(true24,
                                                                                                        actual24)}
    for name, values in f7.items():
        fc = np.concatenate(values, axis=1)
        result["forecast_7d"][name] = {"wape_vs_true": scoring.wape(fc, true7), "wape": scoring.wape(fc, actual7),
                                       "bias": scoring.bias(fc, actual7)}
    result["probability"] = {
        "samples": len(p), "outcome_rate": float(y.mean()),
        "brier": {"count_forecast": scoring.brier(p, y), "seed_rule_days_lt_7": scoring.brier(
            np.concatenate(seed_rule), y), "normal_daily_spread": scoring.brier(np.concatenate(normal), y)},
        "reliability": scoring.reliability(p, y),
        "reliability_normal": scoring.reliability(np.concatenate(normal), y),
        "seed_rule": {"flagged": float(np.concatenate(seed_rule).mean()),
                      "outcome_rate_when_flagged": float(y[np.concatenate(seed_rule) > 0].mean())},
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--warmup-days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rate", type=float, default=1500.0)
    args = parser.parse_args(argv)
    history = simulate(args.warmup_days + args.days + 16, rate=args.rate, seed=args.seed)
    print(json.dumps(score(history, args.warmup_days, args.days), indent=1))


if __name__ == "__main__":
    main()


def closed_loop(days: float, policy: str, *, rate: float = 1500.0, seed: int = 11, warmup_days: float = 2,
                start: dt.datetime = dt.datetime(2026, 5, 4)) -> dict:
    """Fill rate, lost revenue and average stock of ``days`` simulated with the built-in or the recommended policy
    (``replenishment.RecommendedCalibration``), after ``warmup_days``."""
    from scbda_assets.decisions import replenishment

    cal = calibration.calibrate(rate)
    if policy == "recommended":
        cal = replenishment.recommended_calibration(cal)
    rng = np.random.default_rng(seed)
    state = simulation.initial_state(start, cal, rng)
    requested = fulfilled = 0
    lost_revenue = 0.0
    stock_units, stock_value, samples = 0.0, 0.0, 0
    for i in range(int((warmup_days + days) * 1440)):
        state, ev = simulation.step(state, state.as_of + MINUTE, cal, rng)
        if i >= warmup_days * 1440:
            requested += int(ev.requested.sum())
            fulfilled += int(ev.fulfilled.sum())
            lost_revenue += float((ev.lost * ev.unit_price).sum())
            if i % 60 == 0:
                stock_units += float(state.on_hand.sum())
                stock_value += float((state.on_hand * demand.SKU_COST[demand.PAIR_SKU]).sum())
                samples += 1
    return {"policy": policy, "days": days, "fill_rate": fulfilled / requested, "lost_revenue_pkr": lost_revenue,
            "avg_on_hand_units": stock_units / samples, "avg_on_hand_value_pkr": stock_value / samples}
