"""`scbda sql` cannot change anything (issue 21, found 1): every write statement is refused in one line with exit 2
and the archive stays byte-identical; the session runs without SQL on files; output is complete for --csv / --json."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import sqlglot
from click.testing import CliRunner

from scbda_assets.archive.protocol import archive_range
from scbda_assets.cli import main
from scbda_assets.history import sql_views
from scbda_assets.history.sql_views import SqlError, run_sql
from scbda_assets_tests.documents import T
from scbda_assets_tests.history import scenario


def _hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (and every folder, as an empty entry) with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def archived(chain_db, archive_store, spark, spark_server, scbda_environ, monkeypatch):
    """A day of facts, most of it archived: the archive's folder and the facts."""
    facts = scenario.documents(days=1, seed=21)
    scenario.insert(chain_db, facts)
    archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=2), end=T - dt.timedelta(hours=3),
                  now=T, safety_minutes=60)
    monkeypatch.setenv("SCBDA_SPARK_REMOTE", spark_server)
    root = Path(archive_store.root_path)
    assert len(list(root.rglob("*.parquet"))) > 5
    return root, facts


def _write_statements(root: Path) -> list[str]:
    hour = sorted((root / "orders_fact").glob("event_date=*/hour=*"))[0]
    jar = root.parent / "evil.jar"
    jar.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: ADD JAR would accept it
    return [
        f"INSERT OVERWRITE DIRECTORY '{hour}' USING parquet SELECT 1 AS x",
        f"INSERT OVERWRITE DIRECTORY '{root / 'orders_fact'}' USING parquet SELECT * FROM orders LIMIT 1",
        f"CREATE TABLE evil USING parquet LOCATION '{root / 'orders_fact'}' AS SELECT 1 AS x",
        f"CREATE TABLE evil2 (x INT) USING parquet LOCATION '{root / 'orders_fact'}'",
        "DROP TABLE IF EXISTS evil",
        f"ADD JAR '{jar}'",
        "CREATE FUNCTION evil AS 'com.example.Evil'",
        "SET spark.sql.runSQLOnFiles=true",
        "SELECT * FROM text.`/etc/hostname`",
        f"SELECT * FROM parquet.`{root / 'orders_fact'}`",
        f"SELECT 1; INSERT OVERWRITE DIRECTORY '{hour}' USING parquet SELECT 1 AS x",
        f"WITH a AS (SELECT 1 AS x) INSERT OVERWRITE DIRECTORY '{hour}' USING parquet SELECT * FROM a",
    ]


@pytest.mark.slow
def test_write_statements_are_refused_and_the_archive_stays_byte_identical(archived, spark):
    root, facts = archived
    statements = _write_statements(root)
    before = _hashes(root)
    runner = CliRunner()
    for statement in statements:
        result = runner.invoke(main, ["sql", statement])
        assert result.exit_code == 2, (statement, result.output)
        assert result.stdout == "" and result.stderr.count("\n") == 1, (statement, result.output)
        assert result.stderr.startswith("scbda: error: refused: ") and "accepted: one SELECT" in result.stderr
        assert _hashes(root) == before, statement
    assert not (root.parent / "archive.sql-staging").exists() or not any((root.parent / "archive.sql-staging").iterdir())
    # Nothing else changed either: no table or function was created in the session's catalog.
    assert not [t for t in spark.catalog.listTables() if t.name.startswith("evil")]
    # ... and the archive still answers for every id (zero loss: archive ∪ MongoDB hold each order once).
    result = runner.invoke(main, ["sql", "SELECT COUNT(*) AS n, COUNT(DISTINCT order_id) AS ids FROM orders",
                                  "--json"])
    assert json.loads(result.stdout) == [{"n": len(facts["orders_fact"]), "ids": len(facts["orders_fact"])}]


@pytest.mark.slow
def test_spark_itself_refuses_what_the_checker_would_let_through(archived, spark, chain_db, archive_store,
                                                                    monkeypatch):
    """Defence in depth: with the parser check bypassed, Spark is given the text nested as a subquery (its grammar
    takes only a query there) on a session with spark.sql.runSQLOnFiles=false."""
    root, _ = archived
    statements = _write_statements(root)
    monkeypatch.setattr(sql_views, "checked_query", lambda text, views: sqlglot.parse_one("SELECT 1"))
    before = _hashes(root)
    for statement in statements:
        with pytest.raises(SqlError) as info:
            run_sql(spark, chain_db, archive_store, statement)
        assert "\n" not in str(info.value)
        assert _hashes(root) == before, statement
    assert spark.conf.get("spark.sql.runSQLOnFiles") == "false"
    with pytest.raises(Exception, match="UNSUPPORTED_DATASOURCE_FOR_DIRECT_QUERY|runSQLOnFiles|TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM parquet.`{root / 'orders_fact'}`").collect()


@pytest.mark.slow
def test_csv_and_json_write_every_row_and_the_table_says_its_limit(chain_db, spark_server, scbda_environ,
                                                                     monkeypatch):
    monkeypatch.setenv("SCBDA_SPARK_REMOTE", spark_server)
    runner = CliRunner()
    query = "SELECT id, id * 2 AS twice FROM range(12345) ORDER BY id"
    result = runner.invoke(main, ["sql", query, "--csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "id,twice" and len(lines) == 12_346 and lines[-1] == "12344,24688" and result.stderr == ""
    result = runner.invoke(main, ["sql", query, "--json"])
    rows = json.loads(result.stdout)
    assert len(rows) == 12_345 and rows[-1] == {"id": 12_344, "twice": 24_688} and result.stderr == ""
    result = runner.invoke(main, ["sql", query])
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "(10000 rows)"
    assert result.stderr == "scbda: showing the first 10,000 rows; there are more (--csv or --json print all)\n"
