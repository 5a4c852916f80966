"""First start (SPEC §4): an empty store gets SCBDA_SEED_DAYS of history ending now before the live stream starts.

The decision is a pure function of what the store holds, the setting and ``now`` (:func:`plan_seed`); reading the
store (:func:`store_contents`) and writing the seed (:func:`seed_if_empty`) are thin wrappers around it. A store
that holds anything — a generator clock, fact documents, an archive batch — is never seeded again, so a restart
(or a store whose hot data was all archived) keeps its own history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.generator import store
from scbda_assets.settings import Settings
from scbda_assets.timeutil import floor_minute


@dataclasses.dataclass(frozen=True)
class StoreContents:
    generator_clock: dt.datetime | None  # the stream's stored as_of, None when the stream never started
    fact_documents: int  # documents in orders_fact, shipments_fact and inventory_fact
    archived_batches: int  # archive manifests (an archive that holds data means the store held data)

    @property
    def empty(self) -> bool:
        return self.generator_clock is None and self.fact_documents == 0 and self.archived_batches == 0


@dataclasses.dataclass(frozen=True)
class SeedPlan:
    minutes: int  # 0: nothing to write
    end: dt.datetime
    reason: str  # one line for the person starting the pipeline

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(minutes=self.minutes)


def plan_seed(contents: StoreContents, seed_days: float, now: dt.datetime) -> SeedPlan:
    """How much history to write on this start: SCBDA_SEED_DAYS ending at ``now`` (whole minutes) on an empty
    store, nothing on a store that holds data or with SCBDA_SEED_DAYS=0."""
    end = floor_minute(now)
    if not contents.empty:
        held = (f"generator clock {contents.generator_clock:%Y-%m-%d %H:%M} UTC" if contents.generator_clock
                else f"{contents.fact_documents:,} documents, {contents.archived_batches} archive batches")
        return SeedPlan(0, end, f"store already holds data ({held}): no seed")
    minutes = round(seed_days * 1440)
    if minutes < 1:
        return SeedPlan(0, end, "empty store, SCBDA_SEED_DAYS=0: no seed, the live stream starts now")
    return SeedPlan(minutes, end, f"empty store: seeding {_span(minutes)} of history ending {end:%Y-%m-%d %H:%M} UTC "
                                  f"(SCBDA_SEED_DAYS={seed_days:g})")


def _span(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes != 1440 else "")
    return f"{minutes:,} minutes"


def estimated_events(minutes: int, events_per_minute: float) -> int:
    """Orders + shipments a seed writes at average demand (the bar's total is minutes; this is for the user)."""
    return round(minutes * events_per_minute)


def archived_batches(archive_uri: str) -> int:
    """Manifests under a local archive root (an HDFS root is not listed here: its store also holds a clock)."""
    parsed = urlparse(archive_uri)
    if parsed.scheme != "file":
        return 0
    manifests = Path(parsed.path) / "_manifests"
    return sum(1 for _ in manifests.glob("*.json")) if manifests.is_dir() else 0


def store_contents(db, settings: Settings) -> StoreContents:
    state = db[store.STATE_COLLECTION].find_one({"_id": store.STATE_ID}, {"as_of": 1})
    clock = state.get("as_of") if state else None
    if clock is not None and clock.tzinfo is None:
        clock = clock.replace(tzinfo=dt.UTC)
    documents = sum(1 for name in FACT_COLLECTIONS if db[name].find_one({}, {"_id": 1}) is not None)
    return StoreContents(generator_clock=clock, fact_documents=documents,
                         archived_batches=archived_batches(settings.archive_uri))


def seed_if_empty(settings: Settings, now: dt.datetime, progress: bool = True, echo=print) -> dict:
    """Write the seed the plan asks for; returns ``{"seeded": bool, "reason", ...backfill summary}``.

    The seed ends at ``now``; the minute schedule then continues the stream from that clock (it catches up the
    minutes the seed took, SCBDA_CATCHUP_MAX_MINUTES at a time).
    """
    from scbda_assets.generator.backfill import backfill
    from scbda_assets.resources import MongoResource

    mongo = MongoResource(uri=settings.mongo_uri or "", database_name=settings.mongo_db, home=str(settings.home))
    try:
        plan = plan_seed(store_contents(mongo.database(), settings), settings.seed_days, now)
    finally:
        mongo.client().close()
    echo(f"first start: {plan.reason}")
    if plan.minutes == 0:
        return {"seeded": False, "reason": plan.reason}
    echo(f"  about {estimated_events(plan.minutes, settings.events_per_minute):,} events at "
         f"{settings.events_per_minute:g} events/min; the bar shows the time left")
    summary = backfill(settings, minutes=plan.minutes, end=plan.end, progress=progress, desc="seed")
    echo(f"  seeded {summary['total_events']:,} events in {summary['seconds']:.0f} s "
         f"({summary['events_per_second']:,.0f} events/s)")
    return {"seeded": True, "reason": plan.reason, **summary}
