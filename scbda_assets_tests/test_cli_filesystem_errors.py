"""A filesystem error on the archive root is one line in the CLI, no traceback: an archive root that cannot be
created (its parent is a regular file — unwritable even for root). `scbda archive` and `scbda sql` need to write
there: one line naming the path, exit 2 (`scbda kpis` only reads the archive: over such a root it reads MongoDB only)."""

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
def test_an_unwritable_archive_root_is_one_line_and_exit_2_for_archive(unwritable_env, mongo_db):
    env, blocker = unwritable_env
    _assert_one_line(_scbda("archive", env=env), 2, str(blocker))
    assert mongo_db.orders_fact.count_documents({}) == 300  # nothing archived, nothing deleted


@pytest.mark.slow
def test_sql_over_an_unwritable_archive_root_never_prints_a_traceback(unwritable_env):
    """Today `scbda sql` stages inside the archive root (exit 2, one line); once it stages elsewhere it may answer
    from MongoDB alone (exit 0). Either way: no traceback."""
    env, blocker = unwritable_env
    result = _scbda("sql", "SELECT COUNT(*) AS n FROM orders", env=env)
    if result.returncode == 0:
        assert "Traceback" not in result.stderr and "300" in result.stdout
    else:
        _assert_one_line(result, 2, str(blocker))
