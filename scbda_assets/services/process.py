"""Start, find and stop one local server process, remembered by a small JSON state file under $SCBDA_HOME.

A service is "ours" when the PID in its state file is alive and still runs the binary we started, so a stale
file (after a reboot, a crash, PID reuse) never makes us signal someone else's process. We only ever stop PIDs
that we started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil


class ServiceError(RuntimeError):
    """An embedded service could not be started or reached. ``str(error)`` is one line for the user."""


@dataclasses.dataclass(frozen=True)
class RunningService:
    name: str
    pid: int
    port: int
    url: str
    started_at: float


# Loopback is no boundary between the users of one machine: the state folder is the owner's only, and a file
# holding a secret (a password, a URL with one) is written 0600 before the secret goes in.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` created (with missing parents) and made 0700, also when an older version left it world-readable."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def _private_tmp(path: Path, text: str) -> Path:
    """A new 0600 file (from the first byte) beside ``path`` holding ``text``; one name per process."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return tmp


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only."""
    os.replace(_private_tmp(path, text), path)


def service_password(path: Path) -> str:
    """The password kept in ``path`` (0600), generated on first use (the first writer wins, never replaced):
    URL-safe, so it goes into a URI as it is."""
    if not path.exists():
        private_dir(path.parent)
        tmp = _private_tmp(path, secrets.token_urlsafe(24))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    return path.read_text().strip()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """Bookkeeping for one embedded server: ``state_dir/<name>.json`` holds its pid, port and url."""

    def __init__(self, name: str, state_dir: Path, marker: str):
        self.name = name
        self.state_dir = state_dir
        self.state_file = state_dir / f"{name}.json"
        # A substring of the command line that identifies our process (guards against PID reuse).
        self.marker = marker

    def running(self) -> RunningService | None:
        try:
            state = json.loads(self.state_file.read_text())
            proc = psutil.Process(state["pid"])
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            if alive and self.marker in " ".join(proc.cmdline()):
                return RunningService(self.name, state["pid"], state["port"], state["url"], state["started_at"])
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        return None

    def check_port_free(self, port: int, setting: str, uri_setting: str) -> None:
        if port_open(port):
            raise ServiceError(
                f"cannot start embedded {self.name}: port {port} on 127.0.0.1 is taken by another process; "
                f"set {setting} to a free port, or {uri_setting} to use the server already there"
            )

    def spawn(self, argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> int:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            # A new session: Ctrl-C in the terminal reaches `scbda run`, which stops us in order, by PID.
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return proc.pid

    def record(self, pid: int, port: int, url: str) -> RunningService:
        private_dir(self.state_dir)
        service = RunningService(self.name, pid, port, url, time.time())
        write_private(self.state_file, json.dumps(dataclasses.asdict(service)))  # the URL may carry a password
        return service

    def wait_ready(self, pid: int, port: int, timeout: float, log_file: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(port):
                return
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                raise ServiceError(f"embedded {self.name} exited during start-up; see {log_file}: {_last_line(log_file)}")
            time.sleep(0.1)
        stop_pid(pid)
        raise ServiceError(f"embedded {self.name} did not open port {port} within {timeout:.0f} s; see {log_file}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our process (SIGTERM, then SIGKILL after ``timeout``). Returns whether anything was stopped."""
        service = self.running()
        self.state_file.unlink(missing_ok=True)
        if service is None:
            return False
        stop_pid(service.pid, timeout)
        return True


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    except psutil.Error:
        pass


def _last_line(log_file: Path) -> str:
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(empty log)"
    except OSError:
        return "(no log)"
