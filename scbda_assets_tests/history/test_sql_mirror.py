"""The hot-orders mirror of `scbda sql` (issue 25, item 1): a query reads only what was ingested since the last one,
archival and the mirror's retirement never change an answer, and the mirror stays bounded beside the archive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scbda_assets.archive.protocol import archive_range
from scbda_assets.history.sql_mirror import RETIRE_AFTER, mirror_store
from scbda_assets.history.sql_views import run_sql
from scbda_assets.history.store import get_state, history_database
from scbda_assets_tests.documents import T, order
from scbda_assets_tests.history import scenario

QUERY = "SELECT COUNT(*) AS n, COUNT(DISTINCT order_id) AS ids, SUM(requested_qty) AS units FROM orders"


def _expected(orders: list[dict]) -> list[dict]:
    return [{"n": len(orders), "ids": len(orders), "units": sum(o["requested_qty"] for o in orders)}]


def _mirror(db) -> dict:
    return get_state(history_database(db), "sql_mirror_orders_fact")


@pytest.mark.slow
def test_mirror_reads_only_new_orders_and_archival_never_changes_the_answer(chain_db, archive_store, spark):
    facts = scenario.documents(days=3, seed=25)
    scenario.insert(chain_db, facts)
    orders = list(facts["orders_fact"])
    now = T + dt.timedelta(minutes=1)
    assert run_sql(spark, chain_db, archive_store, QUERY, now=now).to_pylist() == _expected(orders)
    built = _mirror(chain_db)
    assert sum(f["rows"] for f in built["files"]) == len(orders) and len(built["files"]) >= 3  # one file per day

    # New orders, stamped as a writer stamps them (ingested_at = its clock): the next query reads those only.
    late = order("ORD-LATE-OLD", "SKU-STAPLE-001", "DC-KHI", T - dt.timedelta(days=2, hours=5), 4)  # a late event
    fresh = [order(f"ORD-NEW-{i}", "SKU-DAIRY-001", "DC-LHE", T + dt.timedelta(seconds=30 + i), 2) for i in range(7)]
    now += dt.timedelta(minutes=3)
    for doc in [late, *fresh]:
        doc["ingested_at"] = now - dt.timedelta(seconds=30)  # within the next sync's grace overlap
    chain_db.orders_fact.insert_many([dict(d) for d in [late, *fresh]])
    orders += [late, *fresh]
    assert run_sql(spark, chain_db, archive_store, QUERY, now=now).to_pylist() == _expected(orders)
    assert sum(f["rows"] for f in _mirror(chain_db)["files"]) - len(facts["orders_fact"]) == 8
    # The next query re-reads the grace overlap (those 8 orders) but writes none of them again.
    now += dt.timedelta(minutes=1)
    assert run_sql(spark, chain_db, archive_store, QUERY, now=now).to_pylist() == _expected(orders)
    synced = _mirror(chain_db)
    assert sum(f["rows"] for f in synced["files"]) - len(facts["orders_fact"]) == 8

    # Archival moves the oldest 1.5 days to Parquet: same answer; the mirror's files of archived days retire.
    archive_range(chain_db, spark, archive_store, start=T - dt.timedelta(days=4), end=T - dt.timedelta(hours=36),
                  now=T, safety_minutes=60)
    hot = chain_db.orders_fact.count_documents({})
    assert 0 < hot < len(orders) - 100
    now += dt.timedelta(minutes=1)
    assert run_sql(spark, chain_db, archive_store, QUERY, now=now).to_pylist() == _expected(orders)
    retired = _mirror(chain_db)
    assert retired["retired"] and len(retired["files"]) < len(synced["files"])
    oldest_hot = min(d["order_ts"] for d in chain_db.orders_fact.find({}, {"order_ts": 1}))
    assert all(f["max_ts"] >= oldest_hot for f in retired["files"])
    # The retired files are deleted once no query can be reading them; the answer still holds.
    now += RETIRE_AFTER
    assert run_sql(spark, chain_db, archive_store, QUERY, now=now).to_pylist() == _expected(orders)
    mirror = Path(mirror_store(archive_store).root_path)
    on_disk = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*.parquet"))
    assert on_disk == sorted(f["name"] for f in _mirror(chain_db)["files"])
    # Zero loss: every order in exactly the stores that say so, once in the view.
    cold = sum(1 for o in orders if o["order_ts"] < T - dt.timedelta(hours=36))
    assert chain_db.orders_fact.count_documents({}) + cold == len(orders)
    assert not any(Path(archive_store.root_path).rglob("*.sql-*"))  # nothing of scbda sql inside the archive root
