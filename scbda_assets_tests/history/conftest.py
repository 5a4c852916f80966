"""History-layer test fixtures: the test's database with dimensions, its ``<db>_history`` twin (dropped after the
test), and the test's archive folder."""

from __future__ import annotations

import pytest

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.domain.reference import DIMENSIONS, dimension_documents
from scbda_assets.generator.store import ensure_indexes
from scbda_assets.history.store import history_database


@pytest.fixture
def chain_db(mongo_db):
    for name in DIMENSIONS:
        mongo_db[name].insert_many(dimension_documents(name))
    ensure_indexes(mongo_db)
    yield mongo_db
    mongo_db.client.drop_database(history_database(mongo_db).name)


@pytest.fixture
def archive_store(settings) -> ArchiveStore:
    return ArchiveStore(settings.archive_uri)
