"""The forecast as KPI input tables, from the history layer's hourly order sums (hot + cold; no Dagster here).

``forecast_tables(db, archive, end, raw_sums)`` fits ``forecast.fit`` on the whole hours of the last
``HISTORY_DAYS`` before E and returns, per (sku, dc): the cumulative expected units from E to E + k hours
(k = 0 … ``HORIZON_HOURS``: the stockout SQL interpolates at its horizon) and the pair's dispersion, level units and
next-24-hour / 7-day forecasts.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
from pymongo.database import Database

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.decisions import forecast
from scbda_assets.domain import demand
from scbda_assets.domain.reference import DCS, RAMADAN_RANGES, SKUS
from scbda_assets.history import read as history_read
from scbda_assets.history.store import history_database
from scbda_assets.timeutil import DAY, HOUR, floor_hour, utc

HISTORY_DAYS = 28
HORIZON_HOURS = 30 * 24  # horizons longer than this (a purchase order weeks late) use the 30-day forecast

CUMULATIVE_SCHEMA = pa.schema([("sku_id", pa.string()), ("dc_id", pa.string()), ("hour_offset", pa.int64()),
                               ("cum_units", pa.float64())])
PAIRS_SCHEMA = pa.schema([("sku_id", pa.string()), ("dc_id", pa.string()), ("dispersion", pa.float64()),
                          ("level_units", pa.float64()), ("forecast_24h_units", pa.float64()),
                          ("forecast_7d_units", pa.float64())])
_PAIR_INDEX = {(SKUS[k].sku_id, DCS[d].dc_id): p for p, (k, d) in enumerate(zip(demand.PAIR_SKU, demand.PAIR_DC))}


def hourly_units(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime,
                 raw_sums: history_read.SumsOf) -> np.ndarray:
    """Requested units per (pair, hour) over the whole hours [start, end): stored hours from ``orders_hourly``,
    the others summed from the raw events (hot ∪ cold) by ``raw_sums``."""
    hours = int((end - start) / HOUR)
    units = np.zeros((demand.N_PAIRS, hours))
    history = history_database(db)
    stored, raw = history_read._pieces(history, start, end)
    rows = [row for lo, hi in stored for row in history_read._stored_group(
        history, lo, hi, {"hour": "$hour", "sku_id": "$sku_id", "dc_id": "$dc_id"})]
    for lo, hi in raw:
        cursor = lo
        while cursor < hi:
            rows += [{**row, "hour": cursor} for row in raw_sums(cursor, cursor + HOUR)]
            cursor += HOUR
    for row in rows:
        pair = _PAIR_INDEX.get((row["sku_id"], row["dc_id"]))
        if pair is not None:
            units[pair, int((utc(row["hour"]) - start) / HOUR)] += row["units_requested"]
    return units


def forecast_tables(db: Database, archive: ArchiveStore | None, end: dt.datetime, raw_sums: history_read.SumsOf,
                    earliest: dt.datetime | None,
                    ramadan: tuple[tuple[dt.date, dt.date], ...] = RAMADAN_RANGES) -> dict[str, pa.Table]:
    last = floor_hour(end)
    first = max(last - HISTORY_DAYS * DAY, floor_hour(earliest) if earliest else last)
    if first >= last:  # less than one whole hour of history: no forecast (the SQL falls back to the 7-day mean)
        return {"forecast": CUMULATIVE_SCHEMA.empty_table(), "forecast_pairs": PAIRS_SCHEMA.empty_table()}
    hours = np.datetime64(first.replace(tzinfo=None), "h") + np.arange(int((last - first) / HOUR)) * forecast.HOUR
    model = forecast.fit(hourly_units(db, archive, first, last, raw_sums), hours, ramadan)
    origin = np.datetime64(utc(end).replace(tzinfo=None), "ms")
    cum = forecast.cumulative_from(model, origin, HORIZON_HOURS)
    ids = [(SKUS[k].sku_id, DCS[d].dc_id) for k, d in zip(demand.PAIR_SKU, demand.PAIR_DC)]
    offsets = np.arange(HORIZON_HOURS + 1)
    cumulative = pa.table({
        "sku_id": np.repeat([s for s, _ in ids], len(offsets)), "dc_id": np.repeat([d for _, d in ids], len(offsets)),
        "hour_offset": np.tile(offsets, len(ids)), "cum_units": cum.ravel()}, schema=CUMULATIVE_SCHEMA)
    pairs = pa.table({"sku_id": [s for s, _ in ids], "dc_id": [d for _, d in ids],
                      "dispersion": model.dispersion, "level_units": model.level_units.astype(float),
                      "forecast_24h_units": cum[:, 24], "forecast_7d_units": cum[:, 168]}, schema=PAIRS_SCHEMA)
    return {"forecast": cumulative, "forecast_pairs": pairs}
