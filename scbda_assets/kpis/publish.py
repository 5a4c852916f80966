"""Write one KPI run to Redis as one atomic snapshot that only moves forward (SPEC §10). No Dagster here.

One Lua script per run (Redis runs it atomically, like MULTI/EXEC): ``kpi:<name>`` for each KPI computed (a subset
run writes only its keys), then ``kpi:last_update``, every key with the TTL, and one entry on the capped
``kpi:history`` stream — **only if the run's as-of is newer than the published one** (``kpi:as_of``, epoch ms,
same TTL). The check and the writes are one step, so the order in which runs finish no longer matters: an older
run finishing last writes nothing. A reader using MGET (or its own MULTI) sees either the previous run or this
one, never a mix. Nothing is written before the whole run has been computed, so a failed run writes nothing.
"""

from __future__ import annotations

import dataclasses
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
LIVE_AS_OF_KEY = "kpi:as_of"  # the as-of of the published snapshot (epoch ms): the guard of the next publish

# KEYS: as-of key, the value keys..., the history stream. ARGV: as-of ms, ttl, history ttl, maxlen, number of
# values, the values..., then the history entry's field/value pairs. Returns {1, as-of} when written, else
# {0, the published as-of}.
_PUBLISH_IF_NEWER = """
local as_of = tonumber(ARGV[1])
local published = tonumber(redis.call('GET', KEYS[1]) or '')
if published ~= nil and published >= as_of then
  return {0, published}
end
local ttl, values = ARGV[2], tonumber(ARGV[5])
for i = 1, values do
  redis.call('SET', KEYS[i + 1], ARGV[i + 5], 'EX', ttl)
end
local stream = KEYS[values + 2]
local entry = {}
for i = values + 6, #ARGV do
  entry[#entry + 1] = ARGV[i]
end
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', unpack(entry))
redis.call('EXPIRE', stream, ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
return {1, as_of}
"""


@dataclasses.dataclass(frozen=True)
class Published:
    written: dict[str, str]  # {redis key: ISO completion time}; empty when the run was older than the live one
    live_as_of: dt.datetime  # the as-of of the live snapshot after this publish

    @property
    def ok(self) -> bool:
        return bool(self.written)


def _ms(moment: dt.datetime) -> int:
    return round(moment.timestamp() * 1000)


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
) -> Published:
    """Write the run atomically if ``as_of`` is newer than the published snapshot's (see the module doc)."""
    completed = iso(completed_at)
    values = {key(kpi_key(name)): json.dumps(result.payload(), separators=(",", ":"), allow_nan=False)
              for name, result in results.items()}
    for name, value in (extra or {}).items():  # e.g. history:daily, in the same transaction and with the same TTL
        values[key(name)] = json.dumps(value, separators=(",", ":"), allow_nan=False)
    values[key(LAST_UPDATE_KEY)] = completed
    history = {"as_of": iso(as_of), **{field: _field(headline.get(field)) for field in HEADLINE_FIELDS}}
    script = client.register_script(_PUBLISH_IF_NEWER)
    keys = [key(LIVE_AS_OF_KEY), *values, key(HISTORY_STREAM)]
    args = [_ms(as_of), int(ttl_seconds), max(HISTORY_TTL_SECONDS, int(ttl_seconds)), HISTORY_MAXLEN, len(values),
            *values.values(), *[item for pair in history.items() for item in pair]]
    written, live_ms = script(keys=keys, args=args)
    live = dt.datetime.fromtimestamp(int(live_ms) / 1000, dt.UTC)
    if not written:
        return Published({}, live)
    return Published({name: completed for name in [*values, key(HISTORY_STREAM)]}, live)


def live_as_of(client: redis.Redis, key: Callable[[str], str] = lambda name: name) -> dt.datetime | None:
    """The as-of of the published live snapshot (None: none, or expired)."""
    value = client.get(key(LIVE_AS_OF_KEY))
    return None if value is None else dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)


def _field(value: float | int | None) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)
