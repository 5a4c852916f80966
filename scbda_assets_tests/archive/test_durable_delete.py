"""Durable before delete (SPEC §8.11): a mongod SIGKILLed right after the last delete chunk, once the archive writer
has published ``complete``, restarts with every delete it acknowledged (journaled write concern), so after recovery
every id is in exactly one store. A private mongod (the session's one is shared by the other tests)."""

from __future__ import annotations

import os
import signal

import pymongo
import pytest

from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range, recover
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings
from scbda_assets_tests import documents
from scbda_assets_tests.archive.conftest import DATA_START, NOW
from scbda_assets_tests.archive.test_protocol import END
from scbda_assets_tests.archive.visibility import assert_readers_see_each_once


class KillsMongodOnComplete(ArchiveStore):
    """SIGKILLs mongod the moment the batch's ``complete`` manifest is published (right after the last delete)."""

    def __init__(self, root_uri: str, mongod_pid: int):
        super().__init__(root_uri)
        self.mongod_pid, self.killed = mongod_pid, False

    def write_new_text(self, relative: str, text: str) -> None:
        super().write_new_text(relative, text)
        if '"status": "complete"' in text and not self.killed:
            os.kill(self.mongod_pid, signal.SIGKILL)
            self.killed = True


@pytest.fixture
def own_mongod(tmp_path):
    service = EmbeddedMongo(Settings.from_env({"SCBDA_HOME": str(tmp_path / "home"),
                                               "SCBDA_MONGO_PORT": str(free_port())}))
    running, _ = service.ensure()
    try:
        yield service, running
    finally:
        service.stop()


def _client(url: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=3000)


@pytest.mark.slow
def test_mongod_sigkilled_right_after_the_last_delete_converges(own_mongod, spark, spark_settings, monkeypatch):
    monkeypatch.setenv("SCBDA_ARCHIVE_LEASE_SECONDS", "3")  # the crashed writer's lease (this process) expires soon
    service, running = own_mongod
    client = _client(running.url)
    db = client["durable_delete"]
    original = {"orders_fact": documents.orders(DATA_START, NOW, 3000, seed=41)}
    documents.insert_all(db, original)
    store = KillsMongodOnComplete(spark_settings.archive_uri, running.pid)
    with pytest.raises(pymongo.errors.PyMongoError):  # the writer loses MongoDB after publishing "complete"
        archive_range(db, spark, store, start=DATA_START, end=END, now=NOW, safety_minutes=60,
                      collections=["orders_fact"], delete_chunk=200)
    assert store.killed
    client.close()
    restarted, _ = service.ensure()  # mongod replays its journal
    client = _client(restarted.url)
    db = client["durable_delete"]
    recover(db, spark, ArchiveStore(spark_settings.archive_uri))
    assert not store.list_files(INCOMPLETE_DIR)
    counts = assert_readers_see_each_once(store, db, original)
    assert counts["orders_fact"][1] == sum(d["order_ts"] < END for d in original["orders_fact"]) > 0
    client.close()
