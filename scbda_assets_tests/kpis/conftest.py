"""KPI test data: the dimensions in the test's database (hand-made fact documents: scbda_assets_tests/documents.py)."""

from __future__ import annotations

import pytest

from scbda_assets.domain.reference import DIMENSIONS, dimension_documents


@pytest.fixture
def kpi_db(mongo_db):
    """The test's database with the four dimension collections (as the reference assets store them)."""
    for name in DIMENSIONS:
        mongo_db[name].insert_many(dimension_documents(name))
    yield mongo_db
    mongo_db.client.drop_database(f"{mongo_db.name}_history")  # the history layer a KPI run keeps next to it
