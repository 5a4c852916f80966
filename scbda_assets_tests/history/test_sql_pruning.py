"""Time pruning never changes an answer (issue 21, found 2): each query equals the same query over unpruned views
(and, where it is simple to state, the plain-Python count of the facts), while a provable bound still prunes."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.archive.protocol import archive_range
from scbda_assets.history import sql_views
from scbda_assets.history.sql_guard import checked_query
from scbda_assets.history.sql_pruning import BoundExpressions, bounds_for
from scbda_assets.history.sql_views import AGGREGATE_VIEWS, VIEWS, evaluate_bounds, run_sql
from scbda_assets_tests.documents import T
from scbda_assets_tests.history import scenario

EDGE = T - dt.timedelta(hours=36)  # in the archived part: pruning crosses the cold / hot boundary
LITERAL = f"TIMESTAMP '{EDGE + dt.timedelta(days=1):%Y-%m-%d %H:%M:%S}' - INTERVAL 1 DAY"  # = EDGE, folded
X = f"TIMESTAMP '{EDGE:%Y-%m-%d %H:%M:%S}'"
LATER = f"TIMESTAMP '{T - dt.timedelta(hours=6):%Y-%m-%d %H:%M:%S}'"


def _counts(facts):
    orders = facts["orders_fact"]
    since = sum(o["order_ts"] >= EDGE for o in orders)
    return {"all": len(orders), "since": since, "before": len(orders) - since}


QUERIES = [  # (query, key of the plain-Python answer or None)
    (f"SELECT COUNT(*) AS n FROM orders WHERE order_ts >= {LITERAL}", "since"),
    (f"SELECT COUNT(*) AS n FROM orders WHERE NOT (order_ts >= {X})", "before"),
    (f"SELECT SUM(CASE WHEN order_ts >= {X} THEN 0 ELSE 1 END) AS n FROM orders", "before"),
    (f"SELECT (SELECT COUNT(*) FROM orders) - COUNT(*) AS n FROM orders WHERE order_ts >= {X}", "before"),
    (f"SELECT COUNT(*) AS n FROM orders WHERE order_ts >= {X} OR dc_id = 'DC-KHI'", None),
    (f"SELECT (SELECT COUNT(*) FROM orders WHERE order_ts >= {X}) AS recent, COUNT(*) AS n FROM orders", None),
    (f"SELECT COUNT(*) AS n FROM orders a LEFT JOIN (SELECT order_id FROM orders WHERE order_ts >= {X}) b "
     "ON a.order_id = b.order_id", "all"),
    (f"SELECT COUNT(o.order_id) AS n, COUNT(s.shipment_id) AS s FROM orders o FULL JOIN shipments s "
     f"ON o.sku_id = s.sku_id AND o.dc_id = s.dc_id AND o.order_ts >= {X} AND s.shipment_ts >= {LATER}", None),
    (f"SELECT dc_id, COUNT(*) AS n FROM orders WHERE order_ts >= {LITERAL} AND order_ts < {LATER} "
     "GROUP BY dc_id ORDER BY dc_id", None),
    (f"SELECT COUNT(*) AS n FROM orders WHERE order_ts BETWEEN {X} AND {LATER}", None),
    (f"SELECT COUNT(*) AS n FROM orders WHERE order_ts >= '{EDGE.astimezone(dt.timezone(dt.timedelta(hours=5)))}'",
     "since"),
    (f"SELECT COUNT(*) AS n FROM orders WHERE order_ts >= DATE '{EDGE:%Y-%m-%d}' + INTERVAL 12 HOURS", None),
    (f"SELECT COUNT(*) AS n FROM shipments WHERE shipment_ts < {X} AND shipment_ts >= {X} - INTERVAL 1 DAY", None),
]


@pytest.mark.slow
def test_pruned_answers_equal_the_unpruned_views(chain_db, archive_store, spark, monkeypatch):
    facts = scenario.documents(days=3, seed=11)
    scenario.insert(chain_db, facts)
    archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=4), end=T - dt.timedelta(hours=30),
                  now=T, safety_minutes=60)
    archived = [o for o in facts["orders_fact"] if o["order_ts"] < T - dt.timedelta(hours=30)]
    assert 0 < chain_db.orders_fact.count_documents({}) < len(facts["orders_fact"]) - 100 and len(archived) > 100
    counts = _counts(facts)
    assert 0 < counts["before"] and 0 < counts["since"]

    pruned = [run_sql(spark, chain_db, archive_store, query).to_pylist() for query, _ in QUERIES]
    with monkeypatch.context() as unpruned_views:
        unpruned_views.setattr(sql_views, "bounds_for", lambda *args: BoundExpressions())
        unpruned = [run_sql(spark, chain_db, archive_store, query).to_pylist() for query, _ in QUERIES]
    for (query, expected), got, reference in zip(QUERIES, pruned, unpruned):
        assert got == reference, query
        if expected:
            assert reference == [{"n": counts[expected]}], query

    # Pruning still happens where it is proven, with the constant folded as Spark folds it (the old regex read the
    # literal alone, a day late, and counted half the rows).
    parsed = checked_query(QUERIES[0][0], frozenset(VIEWS) | frozenset(AGGREGATE_VIEWS))
    assert evaluate_bounds(spark, bounds_for(parsed, "orders", "order_ts")).start == EDGE
