"""The daily forecast scores (SPEC §9b): for every whole hour of a UTC day, the forecast of the next 24 hours from
the hours before, beside the 7-day mean and the seed design's 15 min × 96, against realised demand and the
simulator's true expected demand. ``score_forecasts`` is pure; ``day_scores`` reads the history layer (hot + cold).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.decisions import forecast, inputs, scoring
from scbda_assets.domain import calibration, demand
from scbda_assets.history import read as history_read
from scbda_assets.timeutil import DAY, HOUR, MINUTE

AHEAD = 24
SEED_WINDOW_MINUTES = 15


def score_forecasts(units: np.ndarray, hours: np.ndarray, origins: range, live_15m: np.ndarray,
                    true_rate: np.ndarray, ramadan: forecast.Ramadan) -> dict:
    """``units``/``true_rate``: (pairs, hours) over ``hours``; ``origins``: indexes into ``hours`` with 24 h after
    them; ``live_15m``: (origins, pairs) units requested in the 15 minutes before each origin."""
    names = ("forecast", "mean_7d", "live_15m_x96")
    predicted: dict[str, list] = {name: [] for name in names}
    actual, truth = [], []
    for i, origin in enumerate(origins):
        model = forecast.fit(units[:, :origin], hours[:origin], ramadan)
        predicted["forecast"].append(model.hourly(hours[origin:origin + AHEAD]))
        week = units[:, max(0, origin - 168):origin]
        predicted["mean_7d"].append(np.repeat(week.mean(axis=1, keepdims=True), AHEAD, axis=1))
        predicted["live_15m_x96"].append(np.repeat(live_15m[i][:, None] * (60 / SEED_WINDOW_MINUTES), AHEAD, axis=1))
        actual.append(units[:, origin:origin + AHEAD])
        truth.append(true_rate[:, origin:origin + AHEAD])
    actual_all, truth_all = np.concatenate(actual, axis=1), np.concatenate(truth, axis=1)
    scores = {}
    for name in names:
        values = np.concatenate(predicted[name], axis=1)
        scores[name] = {"wape": scoring.wape(values, actual_all), "bias": scoring.bias(values, actual_all),
                        "wape_vs_true": scoring.wape(values, truth_all),
                        "bias_vs_true": scoring.bias(values, truth_all)}
    return {"origins": len(origins), "pair_hours_scored": int(actual_all.size), "scores": scores}


def day_scores(db: Database, archive: ArchiveStore | None, day: dt.datetime, rate: float,
               ramadan: forecast.Ramadan) -> dict:
    """Scores of the origins at the 24 whole hours of ``day`` (UTC midnight), from ``inputs.HISTORY_DAYS`` before
    it to 24 h after its last hour (the day after must be complete)."""
    start, end = day - inputs.HISTORY_DAYS * DAY, day + 2 * DAY - HOUR
    raw = history_read.raw_order_sums(db, archive)
    units = inputs.hourly_units(db, archive, start, end, raw)
    n = units.shape[1]
    hours = np.datetime64(start.replace(tzinfo=None), "h") + np.arange(n) * forecast.HOUR
    pairs = inputs._PAIR_INDEX
    origins = range(inputs.HISTORY_DAYS * 24, inputs.HISTORY_DAYS * 24 + 24)
    live = np.zeros((len(origins), demand.N_PAIRS))
    for i, origin in enumerate(origins):
        at = start + origin * HOUR
        for row in raw(at - SEED_WINDOW_MINUTES * MINUTE, at):
            if (row["sku_id"], row["dc_id"]) in pairs:
                live[i, pairs[(row["sku_id"], row["dc_id"])]] += row["units_requested"]
    truth = demand.expected_hourly_units(calibration.calibrate(rate).pair_orders_per_minute, hours, ramadan)
    return score_forecasts(units, hours, origins, live, truth, ramadan)
