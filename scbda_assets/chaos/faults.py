"""Fault injectors: each acts on a process or a file of the lane's own pipeline and says what it did.

Only the lane's processes are touched: run workers are found by their Dagster run's pid and must descend from the
lane's `scbda run`; services by the pid their state file under the lane's $SCBDA_HOME records. Every injector
returns ``(injected, note)``: ``injected`` False when there was nothing to act on (the note says why).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from scbda_assets.contract.stages import STAGE_TAG
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import ServiceError
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark
from scbda_assets.settings import Settings

_PID = re.compile(r"\(pid: (\d+)\)")
SKEW_SECONDS = 300  # the skewed generator's clock: 5 minutes ahead (see skewed_generator)


def descendants(root_pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(root_pid).children(recursive=True)}
    except psutil.Error:
        return set()


def runs_in_flight(dagster_home: Path, stage: str) -> list[str]:
    """Run ids of ``stage`` starting or started (a queued run has not touched anything yet)."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        return [run.run_id for run in instance.get_runs(filters=RunsFilter(statuses=statuses,
                                                                            tags={STAGE_TAG: stage}))]
    finally:
        instance.dispose()


def run_workers(instance, stage: str, own: set[int]) -> list[tuple[str, int]]:
    """(run id, worker pid) of the STARTED runs of ``stage`` whose worker is one of ``own`` (the lane's tree)."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    found = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={STAGE_TAG: stage})):
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            match = _PID.search(entry.message or "")
            if match and int(match.group(1)) in own:
                found.append((run.run_id, int(match.group(1))))
                break
    return found


def wait_for_worker(dagster_home: Path, stage: str, root_pid: int, rng: random.Random, wait_s: float
                    ) -> tuple[str, int] | None:
    """(run id, pid) of a worker of ``stage`` in flight under ``root_pid``, polled for at most ``wait_s`` (one
    instance for the whole wait: opening one costs more than a short run lasts)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        deadline = time.monotonic() + wait_s
        while True:
            workers = run_workers(instance, stage, descendants(root_pid))
            if workers:
                return rng.choice(workers)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    finally:
        instance.dispose()


def signal_run(dagster_home: Path, stage: str, root_pid: int, rng: random.Random, *, pause_s: float | None,
               wait_s: float = 40.0) -> tuple[bool, str]:
    """SIGKILL (``pause_s`` None) or SIGSTOP for ``pause_s`` then SIGCONT a run worker of ``stage``, waiting up to
    ``wait_s`` for one to be in flight."""
    found = wait_for_worker(dagster_home, stage, root_pid, rng, wait_s)
    if found is None:
        return False, f"no {stage} run in flight within {wait_s:.0f} s"
    run_id, pid = found
    try:
        if pause_s is None:
            os.kill(pid, signal.SIGKILL)
            return True, f"SIGKILL run {run_id[:8]} pid {pid}"
        os.kill(pid, signal.SIGSTOP)
        time.sleep(pause_s)
        os.kill(pid, signal.SIGCONT)
        return True, f"SIGSTOP run {run_id[:8]} pid {pid} for {pause_s:.0f} s, then SIGCONT"
    except ProcessLookupError:
        return False, f"run {run_id[:8]} pid {pid} ended before the signal"


def start_services(settings: Settings, attempts: int = 3) -> dict[str, str]:
    """services_up, tried again when a start times out (a JVM on a busy 2-core machine can take minutes)."""
    from scbda_assets.services import services_up

    for attempt in range(attempts):
        try:
            return services_up(settings)[0]
        except ServiceError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def kill_mongod(settings: Settings, down_s: float = 3.0) -> tuple[bool, str]:
    """SIGKILL the lane's mongod, then start it again on the same data folder (crash recovery from the journal)."""
    service = EmbeddedMongo(settings)
    running = service.status()
    if running is None:
        return False, "mongod not running"
    os.kill(running.pid, signal.SIGKILL)
    _wait_gone(running.pid)
    time.sleep(down_s)
    start_services(settings)
    return True, f"SIGKILL mongod pid {running.pid}, restarted after {down_s:.0f} s"


def restart_redis(settings: Settings) -> tuple[bool, str]:
    service = EmbeddedRedis(settings)
    running = service.status()
    if running is None:
        return False, "redis-server not running"
    service.stop()
    start_services(settings)
    return True, f"redis-server pid {running.pid} stopped (SIGTERM) and started again"


def kill_spark(settings: Settings, down_s: float = 10.0) -> tuple[bool, str]:
    """SIGKILL the Spark Connect server (its JVM); an operator (here: the lane) starts it again after ``down_s``."""
    service = EmbeddedSpark(settings)
    running = service.status()
    if running is None:
        return False, "Spark Connect server not running"
    os.kill(running.pid, signal.SIGKILL)
    _wait_gone(running.pid)
    time.sleep(down_s)
    start_services(settings)
    return True, f"SIGKILL Spark Connect pid {running.pid}, restarted after {down_s:.0f} s"


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout)


# --- the archive's file system -----------------------------------------------------------------------------------

def mount_tmpfs(path: Path, size_mb: int) -> str | None:
    """A size-limited tmpfs at ``path`` (root only). None if mounted, else why not (the lane then says so)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "not root: cannot mount a size-limited tmpfs"
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
                            capture_output=True, text=True)
    return None if result.returncode == 0 else f"mount refused: {result.stderr.strip() or result.returncode}"


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


FILLER = ".chaos-filler"


def disk_full(archive_root: Path, hold_s: float, mounted: bool) -> tuple[bool, str]:
    """Fill the archive root's file system (a filler file up to the last byte), hold, then free it."""
    if not mounted:
        return False, "the archive root is not on a size-limited mount (see the report's mount note)"
    filler = archive_root / FILLER
    free = shutil.disk_usage(archive_root).free
    with open(filler, "wb") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, free)
        except OSError:
            pass
        chunk = b"\0" * 2**20
        with contextlib.suppress(OSError):  # the last pages: write until ENOSPC
            while True:
                handle.write(chunk)
                handle.flush()
    left = shutil.disk_usage(archive_root).free
    time.sleep(hold_s)
    filler.unlink()
    return True, f"archive file system full ({left} bytes free) for {hold_s:.0f} s"


def corrupt_parquet(archive_root: Path, rng: random.Random) -> tuple[bool, str]:
    """Garbage bytes under a part file's name in an archived hour folder (a torn copy, a bad disk)."""
    hours = sorted(p for p in (archive_root / "orders_fact").glob("event_date=*/hour=*") if p.is_dir())
    if not hours:
        return False, "no archived hour folder yet"
    folder = rng.choice(hours)
    name = f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}Z-{rng.getrandbits(32):08x}-00000.snappy.parquet"
    (folder / name).write_bytes(b"PAR1" + rng.randbytes(4096))
    return True, f"wrote a corrupt {folder.relative_to(archive_root)}/{name}"


# --- generators beside the schedule ---------------------------------------------------------------------------

def racing_generator(env: dict[str, str], rate: float, minutes: int = 10, timeout_s: float = 240.0
                     ) -> tuple[bool, str]:
    """`scbda generate` over the minutes the schedule is writing (ending now), at ``rate``."""
    return _generate(env, ["--minutes", str(minutes), "--rate", f"{rate:g}"], timeout_s, prefix=[])


def skewed_generator(env: dict[str, str], timeout_s: float = 240.0) -> tuple[bool, str]:
    """`scbda generate --minutes 6` (from just before the stream's clock to its own now) by a process whose clock is
    5 minutes ahead (libfaketime), at the stream's rate and seed: it stamps ``ingested_at`` 5 minutes ahead and
    writes minutes that have not happened yet. A clock *behind* cannot be injected this way: `scbda generate`
    refuses an --end in its own future, and the schedule's runs have no clock hook."""
    faketime = shutil.which("faketime")
    if faketime is None:
        return False, "faketime (libfaketime) is not installed: apt-get install faketime"
    return _generate(env, ["--minutes", "6"], timeout_s, prefix=[faketime, "-f", f"{SKEW_SECONDS:+d}s"])


def _generate(env: dict[str, str], args: list[str], timeout_s: float, prefix: list[str]) -> tuple[bool, str]:
    argv = [*prefix, sys.executable, "-m", "scbda_assets.cli", "generate", "--no-progress", *args]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True, f"`scbda generate {' '.join(args)}` killed after {timeout_s:.0f} s"
    last = next((line for line in reversed(err.strip().splitlines()) if line.strip()), "")
    return True, f"`scbda generate {' '.join(args)}` exit {process.returncode}" + (f": {last[:160]}" if last else "")


# --- Ctrl-C of `scbda run` ------------------------------------------------------------------------------------

def ctrl_c(run: subprocess.Popen, timeout_s: float = 180.0, linger_s: float = 20.0) -> tuple[bool, list[str]]:
    """SIGINT to `scbda run`'s process group, as a terminal's Ctrl-C; returns whether it ended in time and the
    processes it started (its tree just before the signal) still alive ``linger_s`` after it ended (a busy machine
    needs a moment to reap grandchildren)."""
    tree = []
    with contextlib.suppress(psutil.Error):
        tree = psutil.Process(run.pid).children(recursive=True)
    os.killpg(run.pid, signal.SIGINT)
    try:
        run.wait(timeout_s)
        ended = True
    except subprocess.TimeoutExpired:
        ended = False
    _, alive = psutil.wait_procs(tree, timeout=linger_s)
    left = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"pid {proc.pid} {' '.join(proc.cmdline())[:80]}")
    return ended, left
