"""Write one KPI run to Redis as one atomic snapshot (SPEC §10). No Dagster here.

One MULTI/EXEC per run: ``kpi:<name>`` for each KPI computed (a subset run writes only its keys), then
``kpi:last_update``, every key with the TTL, and one entry on the capped ``kpi:history`` stream. A reader using
MGET (or its own MULTI) therefore sees either the previous run or this one, never a mix. Nothing is written
before the whole run has been computed, so a failed run writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping

import redis

from scbda_assets.contract import HEADLINE_FIELDS, HISTORY_STREAM, LAST_UPDATE_KEY, kpi_key
from scbda_assets.kpis.compute import KpiResult
from scbda_assets.timeutil import iso

HISTORY_MAXLEN = 1440  # a day of minute runs (approximate trimming: MAXLEN ~)
# The history outlives the snapshot TTL (a paused pipeline keeps its trend), but not forever.
HISTORY_TTL_SECONDS = 24 * 3600


def publish_snapshot(
    client: redis.Redis,
    results: Mapping[str, KpiResult],
    headline: Mapping[str, float | int | None],
    *,
    as_of: dt.datetime,
    ttl_seconds: int,
    key: Callable[[str], str] = lambda name: name,
    completed_at: dt.datetime,
    extra: Mapping[str, dict] | None = None,
) -> dict[str, str]:
    """Write the run atomically; returns {redis key: ISO time} of what was written (for logs and metadata)."""
    completed = iso(completed_at)
    values = {key(kpi_key(name)): json.dumps(result.payload(), separators=(",", ":"), allow_nan=False)
              for name, result in results.items()}
    for name, value in (extra or {}).items():  # e.g. history:daily, in the same transaction and with the same TTL
        values[key(name)] = json.dumps(value, separators=(",", ":"), allow_nan=False)
    values[key(LAST_UPDATE_KEY)] = completed
    history = {"as_of": iso(as_of), **{field: _field(headline.get(field)) for field in HEADLINE_FIELDS}}
    pipe = client.pipeline(transaction=True)
    for name, value in values.items():
        pipe.set(name, value, ex=ttl_seconds)
    pipe.xadd(key(HISTORY_STREAM), history, maxlen=HISTORY_MAXLEN, approximate=True)
    pipe.expire(key(HISTORY_STREAM), max(HISTORY_TTL_SECONDS, ttl_seconds))
    pipe.execute()
    return {name: completed for name in [*values, key(HISTORY_STREAM)]}


def _field(value: float | int | None) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)
