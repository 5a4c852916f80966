"""The archival policy (SPEC §8), pure: given MongoDB's size and the eligible bytes per hour, which hours to archive.

Whole event hours, oldest first, until the projected size is at or below the low-water mark; only hours before the
safety horizon (hour of now − safety minutes); nothing at all while the size is at or below the threshold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from scbda_assets.archive import layout
from scbda_assets.timeutil import HOUR, floor_hour

MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class HourStats:
    hour: dt.datetime
    documents: int
    bytes: int  # logical BSON bytes of the eligible documents (estimated from avgObjSize for the large collections)


@dataclasses.dataclass(frozen=True)
class Plan:
    archive: bool
    reason: str
    data_size: int
    threshold_bytes: int
    low_water_bytes: int
    horizon: dt.datetime
    hours: tuple[dt.datetime, ...] = ()
    documents: int = 0
    bytes: int = 0

    @property
    def projected_bytes(self) -> int:
        return self.data_size - self.bytes

    @property
    def start(self) -> dt.datetime | None:
        return self.hours[0] if self.hours else None

    @property
    def end(self) -> dt.datetime | None:
        return self.hours[-1] + HOUR if self.hours else None

    def summary(self) -> dict:
        return {
            "archive": self.archive,
            "reason": self.reason,
            "data_size_mb": round(self.data_size / MB, 3),
            "threshold_mb": round(self.threshold_bytes / MB, 3),
            "low_water_mb": round(self.low_water_bytes / MB, 3),
            "projected_mb": round(self.projected_bytes / MB, 3),
            "safety_horizon": self.horizon.isoformat(),
            "hours": [layout.partition_key(hour) for hour in self.hours],
            "documents": self.documents,
            "source_mb": round(self.bytes / MB, 3),
        }


def safety_horizon(now: dt.datetime, safety_minutes: int) -> dt.datetime:
    """Exclusive bound: every hour archived ends at or before it."""
    return floor_hour(now - dt.timedelta(minutes=safety_minutes))


def merge_hours(per_collection: list[list[HourStats]]) -> list[HourStats]:
    merged: dict[dt.datetime, HourStats] = {}
    for stats in per_collection:
        for s in stats:
            old = merged.get(s.hour)
            merged[s.hour] = s if old is None else HourStats(s.hour, old.documents + s.documents,
                                                              old.bytes + s.bytes)
    return [merged[hour] for hour in sorted(merged)]


def plan_archive(
    *,
    data_size: int,
    hours: list[HourStats],
    threshold_mb: float,
    low_water: float,
    horizon: dt.datetime,
) -> Plan:
    threshold = int(threshold_mb * MB)
    low_water_bytes = int(threshold * low_water)
    base = dict(data_size=data_size, threshold_bytes=threshold, low_water_bytes=low_water_bytes, horizon=horizon)
    if data_size <= threshold:
        return Plan(False, f"MongoDB dataSize {data_size / MB:.1f} MB is not above the threshold "
                           f"{threshold / MB:.1f} MB: nothing to archive", **base)
    eligible = [h for h in sorted(hours, key=lambda s: s.hour) if h.hour + HOUR <= horizon and h.documents]
    if not eligible:
        return Plan(False, f"MongoDB dataSize {data_size / MB:.1f} MB is above the threshold {threshold / MB:.1f} MB "
                           f"but nothing is eligible: every document is newer than the safety horizon "
                           f"{horizon:%Y-%m-%d %H:%M} UTC or a shipment in transit", **base)
    chosen, projected = [], data_size
    for stats in eligible:
        if projected <= low_water_bytes:
            break
        chosen.append(stats)
        projected -= stats.bytes
    documents, size = sum(s.documents for s in chosen), sum(s.bytes for s in chosen)
    short = "" if projected <= low_water_bytes else " (all eligible hours; still above the low-water mark)"
    reason = (f"archive {len(chosen)} hour(s) {chosen[0].hour:%Y-%m-%d %H:00}..{chosen[-1].hour:%Y-%m-%d %H:00} UTC: "
              f"{documents} documents, {size / MB:.1f} MB; dataSize {data_size / MB:.1f} MB > threshold "
              f"{threshold / MB:.1f} MB, projected {projected / MB:.1f} MB vs low water "
              f"{low_water_bytes / MB:.1f} MB{short}")
    return Plan(True, reason, hours=tuple(s.hour for s in chosen), documents=documents, bytes=size, **base)


def run_key(plan: Plan, after: str = "") -> str:
    """Same state, same key: duplicate ticks never request a second run. The key changes when the chosen hours'
    content changes (a late document or a received shipment changes the count; only archival removes documents),
    at the next horizon hour, or after an archive run failed (``after``: the newest failed run's id)."""
    key = f"archive-{plan.start:%Y%m%d%H}-{plan.end:%Y%m%d%H}-n{plan.documents}-h{plan.horizon:%Y%m%d%H}"
    return f"{key}-after-{after}" if after else key
