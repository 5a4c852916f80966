"""`scbda sql`: views over Parquet ∪ MongoDB de-duplicated by business id, pruning bounds, output formats, and one
clear line (exit 2) for a bad query."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from scbda_assets.archive.protocol import archive_range
from scbda_assets.cli import main
from scbda_assets.history.sql_views import SqlError, run_sql, staging_store
from scbda_assets_tests.history import scenario
from scbda_assets_tests.documents import T


@pytest.mark.slow
def test_views_union_both_stores_once_and_the_cli_formats(chain_db, archive_store, spark, spark_server, scbda_environ,
                                                          monkeypatch):
    facts = scenario.documents(days=1.5, seed=5)
    scenario.insert(chain_db, facts)
    archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=2), end=T - dt.timedelta(hours=2),
                  now=T, safety_minutes=60)
    archived = [o for o in facts["orders_fact"] if o["order_ts"] < T - dt.timedelta(hours=2)]
    assert chain_db.orders_fact.count_documents({}) == len(facts["orders_fact"]) - len(archived)
    chain_db.orders_fact.insert_many([dict(o) for o in archived[:25]])  # a hand-over: in both stores
    total = run_sql(spark, chain_db, archive_store, "SELECT COUNT(*) AS n, SUM(requested_qty) AS units FROM orders")
    assert total.to_pylist() == [{"n": len(facts["orders_fact"]),
                                  "units": sum(o["requested_qty"] for o in facts["orders_fact"])}]
    since = T - dt.timedelta(hours=5)
    pruned = run_sql(spark, chain_db, archive_store,
                     f"SELECT COUNT(*) AS n FROM orders WHERE order_ts >= '{since.isoformat()}'")
    assert pruned.to_pylist() == [{"n": sum(o["order_ts"] >= since for o in facts["orders_fact"])}]
    with pytest.raises(SqlError) as info:
        run_sql(spark, chain_db, archive_store, "SELECT no_such_column FROM orders")
    assert "\n" not in str(info.value) and "no_such_column" in str(info.value)
    # ... and a later Spark error elsewhere in the process still says what was wrong (pyspark's query logger keeps
    # its own class; a plain logging.Logger there turned every later error into a TypeError about 'errorClass').
    from pyspark.errors import PySparkException

    with pytest.raises(PySparkException, match="another_missing_column"):
        spark.sql("SELECT another_missing_column").collect()
    assert not any(d.startswith("sql-") for d in archive_store.list_dirs("_staging"))
    assert staging_store(archive_store).list_dirs("") == []  # hot rows were staged beside the archive, then removed

    monkeypatch.setenv("SCBDA_SPARK_REMOTE", spark_server)
    monkeypatch.setenv("SCBDA_MONGO_DB", chain_db.name)
    runner = CliRunner()
    result = runner.invoke(main, ["sql", "SELECT dc_id, COUNT(*) AS n FROM orders GROUP BY dc_id ORDER BY dc_id",
                                  "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sum(r["n"] for r in rows) == len(facts["orders_fact"]) and rows[0]["dc_id"] == "DC-FSD"
    result = runner.invoke(main, ["sql", "SELECT supplier_id FROM shipments ORDER BY supplier_id LIMIT 2", "--csv"])
    assert result.exit_code == 0 and result.output.splitlines()[0] == "supplier_id"
    result = runner.invoke(main, ["sql", "SELECT COUNT(*) AS n FROM inventory"])
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "(1 row)"
    bad = runner.invoke(main, ["sql", "SELECT nonsense FROM orders"])
    assert bad.exit_code == 2 and bad.output.count("\n") <= 1 and "scbda: error: bad query" in bad.output
    refused = runner.invoke(main, ["sql", "SELEC nonsense"])
    assert refused.exit_code == 2 and refused.output.count("\n") <= 1 and "scbda: error: refused" in refused.output
