"""`scbda chaos`: the whole pipeline (`scbda run`, in a fresh state folder) under a seeded fault schedule, with the
invariant checker after each fault and at the end (SPEC §14). See docs/chaos.md.

Timeline: services up → history backfilled so an archivable hour exists from the start → `scbda run` → faults at
their scheduled moments, each followed by a settle pause and a check → Ctrl-C of `scbda run` (nothing it started
may remain) → the final check (also the KPIs against the reference and whether archival resumed after each fault).
A sampler thread reads the live `kpi:*` as-of every second throughout (the history the as-of invariant checks).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymongo
import redis
from bson.codec_options import CodecOptions

from scbda_assets.chaos import collect, faults
from scbda_assets.chaos.checker import check_kpis, check_stores
from scbda_assets.chaos import invariants as inv
from scbda_assets.chaos.invariants import Observation, Violation
from scbda_assets.chaos.report import FINAL, Step, format_table, report_json
from scbda_assets.chaos.schedule import (CORRUPT_PARQUET, CTRL_C, DISK_FULL, FAULT_KINDS, KILL_MONGOD, KILL_RUN, KILL_SPARK,
                                         PAUSE_RUN, RACING_GENERATOR, RESTART_REDIS, SKEWED_CLOCK, Fault,
                                         make_schedule)
from scbda_assets.errors import first_line
from scbda_assets.launcher import isolated_run_environment
from scbda_assets.services import services_down
from scbda_assets.services.process import ServiceError
from scbda_assets.settings import Settings

# Faults after which archival must have resumed (a batch completed later), unless it had nothing left to do.
ARCHIVE_FAULTS = (KILL_RUN, PAUSE_RUN, KILL_MONGOD, KILL_SPARK, DISK_FULL, CORRUPT_PARQUET)
UTC_CODEC = CodecOptions(tz_aware=True, tzinfo=dt.UTC)


@dataclasses.dataclass
class LaneConfig:
    minutes: float
    seed: int
    rate: float = 150000.0
    threshold_mb: float = 64.0
    archive_mb: int = 4096  # the size-limited archive file system
    settle_s: float = 60.0  # between two faults: the pipeline recovers, then the checker runs
    kinds: tuple[str, ...] | None = None  # None: every kind
    # 1.0: the racer writes the stream itself (same rate and seed), so it passes the door and races the clock's
    # compare-and-set; at another rate `scbda generate` refuses it with one line and nothing is raced
    racing_rate_factor: float = 1.0


class Lane:
    def __init__(self, config: LaneConfig, base_home: Path, echo=print):
        self.config, self.echo = config, echo
        self.home = base_home / f"chaos-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-s{config.seed}"
        self.archive_root = self.home / "archive"
        self.rng = random.Random(config.seed)
        self.observations: list[Observation] = []
        self._sampling = threading.Event()

    # --- setup -----------------------------------------------------------------------------------------------
    def _environment(self) -> None:
        self.mount_problem = faults.mount_tmpfs(self.archive_root, self.config.archive_mb)
        env, _ = isolated_run_environment(
            self.home, SCBDA_EVENTS_PER_MINUTE=f"{self.config.rate:g}",
            SCBDA_ARCHIVE_THRESHOLD_MB=f"{self.config.threshold_mb:g}", SCBDA_SEED_DAYS="0",
            SCBDA_ARCHIVE_SAFETY_MINUTES="16", SCBDA_SEED=str(self.config.seed),
            SCBDA_ARCHIVE_URI=self.archive_root.as_uri())
        self.embedded = Settings.from_env(env)  # what services_down needs: the services as embedded
        endpoints = faults.start_services(self.embedded)
        self.env = {**env, **endpoints}
        self.settings = Settings.from_env(self.env)

    def _backfill_history(self) -> dict:
        """History from 5 minutes before the newest hour that is already past the safety horizon: archival has
        an eligible hour from the first minute."""
        from scbda_assets.generator.backfill import backfill

        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        eligible_end = (now - dt.timedelta(minutes=16)).replace(minute=0)
        minutes = int((now - (eligible_end - dt.timedelta(minutes=5))).total_seconds() // 60)
        return backfill(self.settings, minutes=minutes, rate=self.config.rate, end=now, seed=self.config.seed,
                        progress=False)

    # --- the live-snapshot history -----------------------------------------------------------------------------
    def _sample(self) -> None:
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        while not self._sampling.wait(1.0):
            try:
                self.observations += collect.observe_live(client, self.settings.key_prefix, dt.datetime.now(dt.UTC))
            except redis.RedisError:
                continue  # Redis restarting: no observation

    # --- checks ------------------------------------------------------------------------------------------------
    def _db(self, client: pymongo.MongoClient):
        return client.get_database(self.settings.mongo_db, codec_options=UTC_CODEC)

    def check(self, patience_s: float) -> tuple[list[Violation], dict]:
        """Every invariant but the KPI reference and archival (those run at the end), on what the stores hold now,
        read while no archive run is in flight (a batch between its files and its delete holds its ids in both
        stores for a moment: settled means no batch in flight). Waits at most ``patience_s`` for that."""
        deadline = time.monotonic() + patience_s
        for attempt in range(3):
            while self._archiving() and time.monotonic() < deadline:
                time.sleep(1)
            busy_before, began = self._archiving(), time.monotonic()
            with pymongo.MongoClient(self.settings.mongo_uri, serverSelectionTimeoutMS=30000) as client:
                found, figures = check_stores(self._db(client), self.settings.archive_uri, list(self.observations))
            settled = not busy_before and not self._archiving()
            figures["check_s"] = round(time.monotonic() - began, 1)
            if settled or time.monotonic() >= deadline:
                return found, {**figures, "settled": settled}
        return found, {**figures, "settled": False}

    def _archiving(self) -> bool:
        return bool(faults.runs_in_flight(self.settings.dagster_home, "archive"))

    def check_kpis(self) -> tuple[list[Violation], dict]:
        with pymongo.MongoClient(self.settings.mongo_uri) as client:
            return check_kpis(self.settings, self._db(client))

    def archival_resumed(self, steps: list[Step], grace_s: float = 180.0) -> None:
        """Per archive-related fault: a batch completed after it, unless the policy had nothing to archive
        ``grace_s`` before the end (work that only just became eligible is not owed yet: the sensor's interval
        and one batch)."""
        from scbda_assets.archive.cli import archive_once

        with pymongo.MongoClient(self.settings.mongo_uri) as client:
            completed = collect.complete_batch_times(self._db(client), self.settings.archive_uri)
        then = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace_s)
        owed = archive_once(self.settings, dry_run=True, now=then)
        if not owed.get("archive") and not owed.get("incomplete_batches"):
            return
        for step in steps:
            if (step.injected and step.label.split(":")[0] in ARCHIVE_FAULTS
                    and dt.datetime.fromisoformat(step.at) < then):
                step.violations += inv.archival_resumed(dt.datetime.fromisoformat(step.at), completed, step.label)

    def _batches(self) -> list[dict]:
        from scbda_assets.archive.catalog import batches
        from scbda_assets.archive.storage import ArchiveStore

        with pymongo.MongoClient(self.settings.mongo_uri) as client:
            found = batches(self._db(client), ArchiveStore(self.settings.archive_uri))
        return [{key: b.get(key) for key in ("_id", "status", "created_at", "cutoff", "duration_s")}
                | {"records": {name: c.get("record_count") for name, c in (b.get("collections") or {}).items()},
                   "deleted": {name: c.get("deleted_count") for name, c in (b.get("collections") or {}).items()}}
                for b in found]

    # --- faults ------------------------------------------------------------------------------------------------
    def inject(self, fault: Fault, run: subprocess.Popen) -> tuple[bool, str]:
        kind = fault.kind
        if kind in (KILL_RUN, PAUSE_RUN):
            return faults.signal_run(self.settings.dagster_home, fault.stage, run.pid, self.rng,
                                     pause_s=fault.hold_s if kind == PAUSE_RUN else None)
        if kind == KILL_MONGOD:
            return faults.kill_mongod(self.embedded)
        if kind == RESTART_REDIS:
            return faults.restart_redis(self.embedded)
        if kind == KILL_SPARK:
            return faults.kill_spark(self.embedded)
        if kind == DISK_FULL:
            return faults.disk_full(self.archive_root, fault.hold_s, mounted=self.mount_problem is None)
        if kind == CORRUPT_PARQUET:
            return faults.corrupt_parquet(self.archive_root, self.rng)
        if kind == RACING_GENERATOR:
            return self._racing(run)
        if kind == SKEWED_CLOCK:
            return faults.skewed_generator(self.env)
        raise ValueError(f"unknown fault kind {kind!r}")

    def _racing(self, run: subprocess.Popen) -> tuple[bool, str]:
        """`scbda generate` at another rate while a schedule run of the generator is paused mid-write (SIGSTOP):
        the two write the same minutes, one of them loses the clock's compare-and-set."""
        found = faults.wait_for_worker(self.settings.dagster_home, "generator", run.pid, self.rng, 50.0)
        paused = found[1] if found else None
        if paused:
            os.kill(paused, signal.SIGSTOP)
        try:
            injected, note = faults.racing_generator(self.env, self.config.rate * self.config.racing_rate_factor,
                                                     minutes=5)
        finally:
            if paused:
                os.kill(paused, signal.SIGCONT)
        return injected, (f"generator run pid {paused} paused meanwhile; " if paused else "") + note

    # --- the run -----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.monotonic()
        steps: list[Step] = []
        extra: dict = {"state_folder": str(self.home)}
        self.embedded, self.mount_problem, run = None, "not mounted yet", None
        try:
            self._environment()
            extra["archive_mount"] = self.mount_problem or f"tmpfs {self.config.archive_mb} MB at {self.archive_root}"
            extra["history"] = {k: v for k, v in self._backfill_history().items() if k in ("window_start",
                                                                                        "window_end", "events")}
            log = open(self.home / "scbda-run.log", "ab")
            run = subprocess.Popen([sys.executable, "-m", "scbda_assets.cli", "run"], env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
            sampler = threading.Thread(target=self._sample, daemon=True)
            sampler.start()
            schedule = make_schedule(self.config.seed, self.config.minutes,
                                     self.config.kinds or FAULT_KINDS,
                                     settle_s=self.config.settle_s)
            extra["schedule"] = [dataclasses.asdict(f) for f in schedule]
            begin = time.monotonic()
            for fault in schedule:
                time.sleep(max(0.0, begin + fault.at_s - time.monotonic()))
                if run.poll() is not None:
                    steps.append(Step(fault.label, _now(), False, f"`scbda run` exited ({run.returncode})", []))
                    break
                at = _now()
                try:
                    injected, note = self.inject(fault, run)
                except ServiceError as exc:  # a service that would not come back: the checks will show the rest
                    injected, note = True, f"service restart failed: {first_line(exc)}"
                self.echo(f"{at} {fault.label}: {note}")
                time.sleep(self.config.settle_s / 3)
                violations, figures = self.check(patience_s=self.config.settle_s)
                steps.append(Step(fault.label, at, injected, note, violations, figures["settled"]))
                self.echo(f"    checked in {figures['check_s']} s (settled: {figures['settled']})")
                for v in violations:
                    self.echo(f"    violated: {v.invariant}: {v.detail}")
            time.sleep(max(0.0, begin + self.config.minutes * 60 - time.monotonic()))
            at = _now()
            ended, left = faults.ctrl_c(run)
            self._sampling.set()
            sampler.join(5)
            ctrl_c_violations = inv.nothing_left(ended, left)
            steps.append(Step(CTRL_C, at, True, "SIGINT to the process group of `scbda run`", ctrl_c_violations))
            violations, figures = self.check(patience_s=0)  # nothing runs any more
            try:
                kpi_violations, kpi_figures = self.check_kpis()
            except Exception as exc:  # noqa: BLE001 - the comparison could not run: a finding, not a crash
                kpi_violations, kpi_figures = [Violation(inv.KPIS_EQUAL_REFERENCE, "the reference could not be "
                                                         f"computed: {type(exc).__name__}: {first_line(exc)}")], {}
            steps.append(Step(FINAL, _now(), True, "final check", violations + kpi_violations, figures["settled"]))
            self.archival_resumed(steps)
            extra["archive_batches"] = self._batches()  # evidence: the tmpfs goes with the lane
            extra.update(figures=figures | kpi_figures, observations=len(self.observations),
                         elapsed_s=round(time.monotonic() - started, 1))
        finally:
            self._sampling.set()
            if run is not None and run.poll() is None:  # the lane failed half-way: stop what it started
                faults.ctrl_c(run)
            if self.embedded is not None:
                services_down(self.embedded)
            if self.mount_problem is None:
                faults.unmount(self.archive_root)
        settings = {"seed": self.config.seed, "minutes": self.config.minutes, "rate": self.config.rate,
                    "threshold_mb": self.config.threshold_mb, "invariants": list(inv.INVARIANTS)}
        return report_json(settings, steps, extra)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_chaos(config: LaneConfig, base_home: Path, echo=print) -> tuple[dict, str]:
    """The report (JSON-able) and its table."""
    report = Lane(config, base_home, echo).run()
    return report, format_table(report["table"])
