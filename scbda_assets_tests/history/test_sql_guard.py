"""The parse-based allow-list of `scbda sql` (sql_guard) and the proofs behind pruning (sql_pruning), without Spark."""

from __future__ import annotations

import pytest

from scbda_assets.history.sql_guard import RefusedStatement, checked_query, statement_text, table_sources
from scbda_assets.history.sql_pruning import BoundExpressions, bounds_for

VIEWS = frozenset({"orders", "shipments", "inventory", "orders_hourly", "shipments_history"})

REFUSED = {
    "INSERT OVERWRITE DIRECTORY '/a/orders_fact' USING parquet SELECT * FROM orders LIMIT 1": "INSERT OVERWRITE",
    "INSERT OVERWRITE LOCAL DIRECTORY '/tmp/x' SELECT 1": "INSERT OVERWRITE",
    "INSERT INTO orders SELECT * FROM orders": "INSERT",
    "CREATE TABLE t USING parquet LOCATION '/archive/orders_fact' AS SELECT 1": "CREATE",
    "CREATE TEMPORARY VIEW v AS SELECT 1": "CREATE",
    "DROP TABLE orders": "DROP",
    "ALTER TABLE orders ADD COLUMNS (x INT)": "ALTER",
    "ADD JAR /tmp/evil.jar": "ADD JAR",
    "CREATE FUNCTION f AS 'com.example.Evil'": "CREATE",
    "SET spark.sql.runSQLOnFiles=true": "SET",
    "RESET": "RESET",
    "USE other": "USE",
    "MSCK REPAIR TABLE t": "MSCK",
    "CACHE TABLE orders": "CACHE",
    "UNCACHE TABLE orders": "UNCACHE",
    "REFRESH TABLE orders": "REFRESH",
    "LOAD DATA INPATH '/x' INTO TABLE t": "LOAD",
    "TRUNCATE TABLE orders": "TRUNCATE",
    "DELETE FROM orders": "DELETE",
    "UPDATE orders SET x = 1": "UPDATE",
    "EXPLAIN SELECT 1": "EXPLAIN",
    "SHOW TABLES": "SHOW",
    "DESCRIBE orders": "DESCRIBE",
    "TABLE orders": "TABLE",
    "BEGIN SELECT 1; END": "BEGIN",
    "SELECT 1; DROP TABLE orders": "2 statements",
    "SELECT * FROM text.`/etc/passwd`": "text.`/etc/passwd`",
    "SELECT * FROM parquet.`/archive/orders_fact`": "parquet.",
    "SELECT * FROM json.`/tmp/x.json`": "json.",
    "SELECT * FROM global_temp.orders": "global_temp.orders",
    "SELECT * FROM spark_catalog.default.orders": "spark_catalog",
    "SELECT * FROM read_files('/etc')": "read_files",
    "SELECT * FROM IDENTIFIER('orders')": "identifier",
    "SELECT * FROM some_table": "some_table",
    "SELECT reflect('java.lang.System', 'exit', 1)": "reflect",
    "SELECT java_method('java.lang.System', 'getenv', 'HOME')": "java_method",
    "SELECT TRANSFORM(order_id) USING 'rm -rf /' AS (x) FROM orders": "QUERYTRANSFORM",
    "SELECT default.evil(1)": "default.evil",
    "SELECT * FROM orders WHERE order_id IN (SELECT x FROM parquet.`/a`)": "parquet.",
    "SELECT * FROM (WITH a AS (SELECT 1) SELECT * FROM a) UNION SELECT * FROM a": "'a'",
}


@pytest.mark.parametrize("statement", list(REFUSED))
def test_everything_but_one_query_over_the_views_is_refused_in_one_line(statement):
    with pytest.raises(RefusedStatement) as info:
        checked_query(statement, VIEWS)
    message = str(info.value)
    assert "\n" not in message and REFUSED[statement].lower() in message.lower() and "accepted: one SELECT" in message


@pytest.mark.parametrize("query, views", [
    ("SELECT COUNT(*) FROM orders", ["orders"]),
    ("select count(*) from ORDERS;", ["ORDERS"]),
    ("WITH recent AS (SELECT * FROM orders) SELECT COUNT(*) FROM recent", ["orders"]),
    ("SELECT * FROM orders o JOIN shipments s ON o.sku_id = s.sku_id", ["orders", "shipments"]),
    ("SELECT dc_id FROM orders UNION ALL SELECT dc_id FROM inventory", ["orders", "inventory"]),
    ("SELECT /*+ BROADCAST(o) */ o.order_id FROM orders o", ["orders"]),
    ("SELECT * FROM orders_hourly, shipments_history", ["orders_hourly", "shipments_history"]),
    ("SELECT id FROM range(12000)", []),
    ("SELECT x FROM VALUES (1), (2) AS t(x)", []),
    ("SELECT * FROM orders LATERAL VIEW explode(array(1, 2)) t AS x", ["orders"]),
    ("SELECT 1 -- ; DROP TABLE orders", []),
])
def test_queries_over_the_views_are_accepted(query, views):
    assert [t.name for t in table_sources(checked_query(query, VIEWS))] == views


def test_statement_text_drops_trailing_semicolons_and_comments_only():
    assert statement_text("SELECT 1; -- done\n ;") == "SELECT 1"
    assert statement_text("SELECT 'a;b' -- c") == "SELECT 'a;b'"


def _bounds(query: str, view: str = "orders", field: str = "order_ts") -> BoundExpressions:
    return bounds_for(checked_query(query, VIEWS), view, field)


def test_bounds_come_from_a_top_level_and_of_comparisons_with_constants():
    bounds = _bounds("SELECT COUNT(*) FROM orders WHERE order_ts >= TIMESTAMP '2026-12-03 02:00:00' - INTERVAL 1 DAY"
                     " AND dc_id = 'DC-KHI' AND order_ts < '2026-12-04' AND (NOT dc_id = 'x' OR sku_id = 'y')")
    assert bounds == BoundExpressions(lower=("CAST('2026-12-03 02:00:00' AS TIMESTAMP) - INTERVAL '1' DAY",),
                                      upper=("'2026-12-04'",))
    assert _bounds("SELECT 1 FROM shipments s WHERE s.shipment_ts BETWEEN '2026-11-01' AND DATE '2026-11-03'",
                   "shipments", "shipment_ts") == BoundExpressions(("'2026-11-01'",), ("CAST('2026-11-03' AS DATE)",))
    assert _bounds("SELECT 1 FROM orders WHERE '2026-11-01' < order_ts") == BoundExpressions(("'2026-11-01'",), ())
    assert _bounds("SELECT 1 FROM orders WHERE orders.order_ts = TIMESTAMP_NTZ '2026-11-01 00:00'") == \
        BoundExpressions(("CAST('2026-11-01 00:00' AS TIMESTAMP_NTZ)",), ("CAST('2026-11-01 00:00' AS TIMESTAMP_NTZ)",))


X = "TIMESTAMP '2026-11-21 12:00:00'"


@pytest.mark.parametrize("query", [
    f"SELECT COUNT(*) FROM orders WHERE NOT (order_ts >= {X})",
    f"SELECT COUNT(*) FROM orders WHERE order_ts >= {X} OR dc_id = 'DC-KHI'",
    f"SELECT SUM(CASE WHEN order_ts >= {X} THEN 0 ELSE 1 END) FROM orders",
    f"SELECT COUNT(*) FROM orders WHERE CASE WHEN dc_id = 'x' THEN true ELSE order_ts >= {X} END",
    f"SELECT (SELECT COUNT(*) FROM orders) - COUNT(*) FROM orders WHERE order_ts >= {X}",
    f"SELECT COUNT(*) FROM orders WHERE order_ts >= {X} AND order_id IN (SELECT order_id FROM orders)",
    f"SELECT COUNT(*) FROM orders WHERE order_ts >= {X} AND EXISTS (SELECT 1 FROM shipments)",
    f"SELECT COUNT(*) FROM orders a JOIN orders b ON a.sku_id = b.sku_id WHERE a.order_ts >= {X}",
    f"SELECT COUNT(*) FROM orders o FULL JOIN shipments s ON o.sku_id = s.sku_id WHERE o.order_ts >= {X}",
    f"SELECT COUNT(*) FROM orders, shipments WHERE order_ts >= {X}",
    f"SELECT COUNT(*) FROM orders LATERAL VIEW explode(array(1)) t AS x WHERE order_ts >= {X}",
    f"SELECT order_id FROM orders WHERE order_ts >= {X} UNION ALL SELECT order_id FROM orders",
    f"WITH o AS (SELECT * FROM orders) SELECT COUNT(*) FROM o WHERE order_ts >= {X}",
    f"SELECT COUNT(*) FROM (SELECT * FROM orders) WHERE order_ts >= {X}",
    "SELECT COUNT(*) FROM orders WHERE order_ts >= current_timestamp() - INTERVAL 1 DAY",
    "SELECT COUNT(*) FROM orders WHERE order_ts >= 0",
    "SELECT COUNT(*) FROM orders WHERE order_ts >= ingested_at",
    "SELECT COUNT(*) FROM orders WHERE other.order_ts >= '2026-11-21'",
    f"SELECT COUNT(*) FROM orders WHERE order_ts NOT BETWEEN {X} AND {X}",
    f"SELECT COUNT(*) FROM orders WHERE order_ts <=> {X}",
    f"SELECT COUNT(*) FROM orders GROUP BY dc_id HAVING MIN(order_ts) >= {X}",
])
def test_no_bounds_unless_every_row_is_restricted(query):
    assert _bounds(query) == BoundExpressions()
