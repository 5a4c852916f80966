"""A seeded fault schedule (FoundationDB-style: one seed, one schedule, replayable): which fault, when, on what.

Pure: ``make_schedule(seed, minutes, kinds)`` depends on nothing but its arguments (``random.Random(seed)``).
"""

from __future__ import annotations

import dataclasses
import random

# Fault kinds. A run kind is applied to a Dagster run of that stage (its worker process, found by the run's pid).
# The history layer has no runs of its own on the schedule: every KPI run maintains it (history/maintain.py), so a
# KPI run's worker is also the history writer.
RUN_STAGES = ("generator", "archive", "kpis")
KILL_RUN = "kill_run"  # SIGKILL a run worker
PAUSE_RUN = "pause_run"  # SIGSTOP a run worker, SIGCONT after a while
KILL_MONGOD = "kill_mongod"  # SIGKILL mongod, start it again on the same data
RESTART_REDIS = "restart_redis"
KILL_SPARK = "kill_spark"  # SIGKILL the Spark Connect server (started again by the next run that needs it)
DISK_FULL = "disk_full"  # fill the archive root's file system for a while
CORRUPT_PARQUET = "corrupt_parquet"  # a garbage .parquet file in an archive hour folder
RACING_GENERATOR = "racing_generator"  # `scbda generate` over the minutes the schedule is writing
SKEWED_CLOCK = "skewed_clock"  # a generator whose clock is 5 minutes off (needs a clock hook, see docs/chaos.md)
FAULT_KINDS = (KILL_RUN, PAUSE_RUN, KILL_MONGOD, RESTART_REDIS, KILL_SPARK, DISK_FULL, CORRUPT_PARQUET,
               RACING_GENERATOR, SKEWED_CLOCK)
# Ctrl-C of `scbda run` is the lane's last step, not a scheduled fault: nothing it started may remain.
CTRL_C = "ctrl_c_run"


@dataclasses.dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the pipeline started
    kind: str
    stage: str | None = None  # a run stage for KILL_RUN / PAUSE_RUN
    hold_s: float = 0.0  # how long a paused process, a full disk or a stopped service stays so

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.stage}" if self.stage else self.kind


def make_schedule(seed: int, minutes: float, kinds: tuple[str, ...] = FAULT_KINDS, *, warmup_s: float = 60.0,
                  settle_s: float = 45.0) -> list[Fault]:
    """Faults at seeded random moments in [warmup, end − settle), at least ``settle_s`` apart so the checker runs
    on a settled pipeline between two faults. Every kind appears once before any repeats (a short lane still
    covers them all); run faults pick a stage at random."""
    rng = random.Random(seed)
    end = minutes * 60 - settle_s
    slots = max(0, int((end - warmup_s) // settle_s))
    if not kinds or slots == 0:
        return []
    order: list[str] = []
    while len(order) < slots:
        batch = list(kinds)
        rng.shuffle(batch)
        order += batch
    order = order[:slots]
    faults = []
    for i, kind in enumerate(order):
        at = warmup_s + i * settle_s + rng.uniform(0, settle_s / 3)
        stage = rng.choice(RUN_STAGES) if kind in (KILL_RUN, PAUSE_RUN) else None
        hold = round(rng.uniform(5, 20), 1) if kind in (PAUSE_RUN, DISK_FULL) else 0.0
        faults.append(Fault(round(at, 1), kind, stage, hold))
    return faults
