"""`scbda generate`: write N minutes of history ending at --end as fast as possible (same code as the schedule).

The window is [end − N min, end) on whole minutes. An existing stream is continued, never rewritten: minutes
before the stored clock are not written again (a window entirely before it writes nothing), and a clock older
than the window start jumps forward to it (the skipped minutes have no events; stock carries over). A stream has
one rate and seed (SPEC §7): ``--rate``/``--seed`` other than the stream's are refused (exit 2), a live writer of
the same stream makes this one wait, then say "busy" (exit 4), and a new stream over stored time is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tqdm import tqdm

from scbda_assets.domain.calibration import expected_dimensions
from scbda_assets.generator import claim, store
from scbda_assets.clients import mongo_client, settings_mongo_uri
from scbda_assets.generator.stream import advance, wall_clock
from scbda_assets.settings import ConfigError, Settings
from scbda_assets.timeutil import floor_minute


def backfill(
    settings: Settings,
    *,
    minutes: int,
    rate: float | None = None,
    end: dt.datetime | None = None,
    seed: int | None = None,
    progress: bool = True,
    desc: str = "generate",
    clock: Callable[[], dt.datetime] = wall_clock,
) -> dict:
    """Write the window and return a JSON-able summary (events per collection, seconds, events/s).

    ``rate``/``seed`` None: the stream's (a new stream: the settings'); another than the stream's is refused."""
    now = clock()
    end = now if end is None else (end if end.tzinfo else end.replace(tzinfo=dt.UTC))
    if minutes < 1:
        raise ConfigError(f"--minutes {minutes} is not valid: expected a whole number of minutes >= 1")
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate {rate} is not valid: expected events per minute > 0")
    if end > now + dt.timedelta(minutes=1):
        raise ConfigError(f"--end {end.isoformat()} is in the future: expected a time up to now ({now:%Y-%m-%dT%H:%M}Z)")
    end = floor_minute(end)
    start = end - dt.timedelta(minutes=minutes)
    client = mongo_client(settings_mongo_uri(settings))
    db = client[settings.mongo_db]
    try:
        store.load_state(db)  # a malformed state fails here, with one line, before the progress bar is drawn
        # Another rate or seed than the stream's: refused here, before anything (dimensions included) is written.
        stream_rate, stream_seed = claim.resolve_params(db, rate, seed, default_rate=settings.events_per_minute,
                                                        default_seed=settings.seed)
    except BaseException:
        client.close()
        raise
    bar = tqdm(total=minutes, unit="min", desc=desc, disable=not progress, leave=False)
    done = [0]

    def on_batch(minutes_done: int, events: int) -> None:
        bar.update(minutes_done - done[0])
        bar.set_postfix(events=events)
        done[0] = minutes_done

    try:
        result = advance(
            db, settings, end=end, start_if_new=start, rate=rate, seed=seed, jump_to=start, on_batch=on_batch,
            now=clock,
        )
        # The dimensions of the stream that was written (a writer that lost the race never writes them).
        dimensions_written = store.ensure_dimensions(db, expected_dimensions(claim.stream_rate(db, stream_rate)))
    finally:
        bar.close()
        client.close()
    seconds = max(result.seconds, 1e-9)
    return {
        "window_start": result.start.isoformat(),
        "window_end": result.end.isoformat(),
        "minutes": result.minutes,
        "skipped_minutes": result.skipped_minutes,
        "rate": stream_rate,
        "dimensions_written": dimensions_written,
        "seed": stream_seed,
        "events": dict(result.written),
        "receipts": result.received,
        "late_events_pending": result.late_pending,
        "total_events": result.events,
        "seconds": round(seconds, 3),
        "events_per_second": round(result.events / seconds, 1),
    }
