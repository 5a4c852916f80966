"""Demand forecast per (sku, dc) from hourly order history (pure NumPy; no I/O, no Dagster). SPEC §9b.

A multiplicative seasonal profile, the structure the chain's demand has:
    expected units(pair, hour) = level(pair) × profile(hour of week, Asia/Karachi) × Ramadan(local date)
- the hour-of-week profile is pooled over all pairs (they share the time of day and the weekend), with Ramadan
  divided out by the configured multiplier; a bin seen in fewer than ``MIN_WEEKS`` weeks falls back to the pooled
  hour-of-day profile × the weekend multiplier of the business rules;
- each pair's level = its units over the last ``LEVEL_DAYS`` ÷ the profile summed over the same hours;
- dispersion = Pearson variance-to-mean ratio of the pair's hourly units around the fit (≥ 1: Poisson), used by
  the count distribution of the stockout probability (``risk.py``).
Measured against statsforecast-style baselines and the true rate in docs/forecast.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from scbda_assets.domain import demand
from scbda_assets.domain.reference import RAMADAN_RANGES, RULES

HOUR = np.timedelta64(1, "h")
HOURS_PER_WEEK = 168
LEVEL_DAYS = 14
MIN_WEEKS = 2
Ramadan = tuple[tuple[dt.date, dt.date], ...]


def _local(hours: np.ndarray) -> np.ndarray:
    return hours.astype("datetime64[h]") + demand.BUSINESS_OFFSET


def hour_of_week(hours: np.ndarray) -> np.ndarray:
    """0 = Monday 00:00 local time … 167 = Sunday 23:00 (1970-01-01 was a Thursday: weekday 3)."""
    local = _local(hours).astype(np.int64)
    return (local + 3 * 24) % HOURS_PER_WEEK


def ramadan_factor(hours: np.ndarray, ramadan: Ramadan = RAMADAN_RANGES) -> np.ndarray:
    days = _local(hours).astype("datetime64[D]")
    unique, inverse = np.unique(days, return_inverse=True)
    factors = np.array([demand.season_multiplier(day.item(), ramadan) for day in unique])
    return factors[inverse] if len(unique) else np.ones(0)


@dataclasses.dataclass(frozen=True)
class Model:
    profile: np.ndarray  # per hour of week: pooled units per hour outside Ramadan (any scale)
    level: np.ndarray  # per pair: units per unit of profile
    dispersion: np.ndarray  # per pair: variance / mean of hourly units (>= 1)
    level_units: np.ndarray  # per pair: units the level was estimated from (its uncertainty)
    ramadan: Ramadan

    def hourly(self, hours: np.ndarray) -> np.ndarray:
        """Expected units per (pair, hour) for the given UTC hour starts."""
        factor = self.profile[hour_of_week(hours)] * ramadan_factor(hours, self.ramadan)
        return self.level[:, None] * factor[None, :]


def fit(units: np.ndarray, hours: np.ndarray, ramadan: Ramadan = RAMADAN_RANGES) -> Model:
    """``units``: requested units per (pair, hour) over consecutive UTC ``hours`` (datetime64 hour starts)."""
    units = np.asarray(units, dtype=float)
    season = ramadan_factor(hours, ramadan)
    how = hour_of_week(hours)
    total = units.sum(axis=0) / season
    seen = np.bincount(how, minlength=HOURS_PER_WEEK)
    by_bin = np.bincount(how, weights=total, minlength=HOURS_PER_WEEK) / np.maximum(seen, 1)
    weekend = np.isin((np.arange(HOURS_PER_WEEK) // 24), demand.WEEKEND_DAYS)
    week_factor = np.where(weekend, RULES.weekend_demand_multiplier, 1.0)
    day_hour = how % 24
    hod_seen = np.bincount(day_hour, minlength=24)
    hod = np.bincount(day_hour, weights=total / week_factor[how], minlength=24) / np.maximum(hod_seen, 1)
    fallback = hod[np.arange(HOURS_PER_WEEK) % 24] * week_factor
    if not hod_seen.all():  # less than a day of history: the domain's own time-of-day shape
        fallback = np.full(HOURS_PER_WEEK, total.mean() if len(total) else 1.0) * demand.HOURLY_PROFILE[
            np.arange(HOURS_PER_WEEK) % 24] * week_factor
    profile = np.where(seen >= MIN_WEEKS, by_bin, fallback)
    profile = np.where(profile > 0, profile, max(profile.max(), 1e-9) * 1e-3)

    recent = slice(max(0, len(hours) - LEVEL_DAYS * 24), len(hours))
    factor = profile[how[recent]] * season[recent]
    level_units = units[:, recent].sum(axis=1)
    level = level_units / max(factor.sum(), 1e-12)
    fitted = level[:, None] * factor[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = ((units[:, recent] - fitted) ** 2).sum(axis=1) / fitted.sum(axis=1)
    dispersion = np.where(np.isfinite(pearson), np.maximum(pearson, 1.0), 1.0)
    return Model(profile, level, dispersion, level_units, ramadan)


def cumulative_from(model: Model, origin: np.datetime64, hours_ahead: int) -> np.ndarray:
    """Expected units in [origin, origin + k h) for k = 0 … hours_ahead, per pair (shape pairs × hours_ahead + 1);
    ``origin`` may fall inside an hour (the rest of that hour counts pro rata)."""
    origin = origin.astype("datetime64[ms]")
    first = origin.astype("datetime64[h]")
    starts = first + np.arange(hours_ahead + 2) * HOUR
    per_hour = model.hourly(starts)
    cum_from_first = np.concatenate((np.zeros((per_hour.shape[0], 1)), per_hour.cumsum(axis=1)), axis=1)
    offset = float((origin - first.astype("datetime64[ms]")) / np.timedelta64(1, "ms")) / 3_600_000
    k = np.arange(hours_ahead + 1)
    position = k + offset  # hours from ``first``
    whole = np.floor(position).astype(int)
    frac = position - whole
    at = cum_from_first[:, whole] + frac * per_hour[:, whole]
    start = offset * per_hour[:, :1]
    return at - start


def variance_ratio(model: Model, mean: np.ndarray) -> np.ndarray:
    """Variance ÷ mean of the demand over a horizon whose expected demand is ``mean`` (per pair): the hourly
    dispersion plus the uncertainty of the estimated level (relative variance dispersion / units seen)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        level_term = np.where(model.level_units > 0, mean / model.level_units, 0.0)
    return model.dispersion * (1.0 + level_term)


def next_days(model: Model, origin: np.datetime64, days: int = 7) -> np.ndarray:
    """Expected units per pair for each of the next ``days`` 24-hour blocks from ``origin``."""
    cum = cumulative_from(model, origin, days * 24)
    return np.diff(cum[:, ::24], axis=1)
