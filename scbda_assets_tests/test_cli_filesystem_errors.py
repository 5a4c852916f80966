"""A filesystem error on the archive root is one line in the CLI, no traceback: an archive root that cannot be
created (its parent is a regular file — unwritable even for root). `scbda archive` and `scbda sql` need to write
there: exit 2 naming the path (`scbda kpis` only reads the archive: over such a root it reads MongoDB only)."""

from __future__ import annotations

import pytest

from scbda_assets_tests.documents import T, insert_all, orders
from scbda_assets_tests.test_cli_errors import _assert_one_line, _scbda


@pytest.fixture
def unwritable_env(test_env, spark_server, mongo_db, tmp_path):
    insert_all(mongo_db, {"orders_fact": orders(T.replace(day=20), T, 300, seed=5)})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the archive root's parent should be")
    env = {**test_env, "SCBDA_SPARK_REMOTE": spark_server, "SCBDA_ARCHIVE_URI": (blocker / "archive").as_uri(),
           "SCBDA_ARCHIVE_THRESHOLD_MB": "0.001"}
    return env, blocker


@pytest.mark.slow
@pytest.mark.parametrize("command", [("archive",), ("sql", "SELECT COUNT(*) AS n FROM orders")])
def test_an_unwritable_archive_root_is_one_line_and_exit_2(unwritable_env, mongo_db, command):
    env, blocker = unwritable_env
    _assert_one_line(_scbda(*command, env=env), 2, str(blocker))
    assert mongo_db.orders_fact.count_documents({}) == 300  # nothing archived, nothing deleted

