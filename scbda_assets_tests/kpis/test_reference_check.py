"""Independent computation check: the Spark KPIs equal a plain-Python implementation of SPEC §9, field by field,
on seeded random documents (boundary times, ties, malformed documents and unknown ids included)."""

from __future__ import annotations

import datetime as dt
import math
import random

from scbda_assets.domain.reference import DIMENSIONS, dimension_documents
from scbda_assets.kpis.compute import KPI_NAMES, compute_kpis
from scbda_assets_tests.documents import T, order, shipment, snapshot
from scbda_assets_tests.kpis.reference import reference_kpis

SEED = 20261122


def _time(rng: random.Random) -> dt.datetime:
    """Mostly inside the 30-minute window, some exactly on its edges, some outside; millisecond precision."""
    edge = rng.random()
    if edge < 0.05:
        return T
    if edge < 0.10:
        return T - dt.timedelta(minutes=rng.choice([15, 30]))
    return T - dt.timedelta(milliseconds=rng.randint(-120_000, 40 * 60_000))


def _documents(rng: random.Random) -> dict[str, list[dict]]:
    skus = [d["sku_id"] for d in dimension_documents("skus_dim")] + ["SKU-UNKNOWN"]
    dcs = [d["dc_id"] for d in dimension_documents("dcs_dim")] + ["DC-UNKNOWN"]
    suppliers = [d["supplier_id"] for d in dimension_documents("suppliers_dim")] + ["SUP-UNKNOWN"]
    pairs = [(rng.choice(skus), rng.choice(dcs)) for _ in range(30)]
    snapshots = []
    for i in range(400):
        sku, dc = rng.choice(pairs)
        ts = _time(rng)
        if rng.random() < 0.15 and snapshots:  # ties: same pair and time as an earlier snapshot
            earlier = rng.choice(snapshots)
            sku, dc, ts = earlier["sku_id"], earlier["dc_id"], earlier["inventory_ts"]
        snapshots.append(snapshot(f"INV-{rng.randint(0, 10**6):07d}-{i}", sku, dc, rng.randint(0, 5000), ts,
                                  safety_stock=rng.choice([rng.randint(0, 800), rng.uniform(0, 800)]),
                                  reorder_point=rng.randint(0, 1500)))
    orders = []
    for i in range(800):
        sku, dc = rng.choice(pairs)
        requested = rng.randint(0 if rng.random() < 0.02 else 1, 12)
        fulfilled = rng.randint(0, requested)
        orders.append(order(f"ORD-{i}", sku, dc, _time(rng), requested, fulfilled, round(rng.uniform(0, 20000), 2),
                            round(rng.uniform(0, 500), 2)))
    shipments = []
    for i in range(150):
        ts = _time(rng)
        planned = rng.choice([round(rng.uniform(1, 10), 3), rng.randint(1, 9)])
        expected = ts + dt.timedelta(days=planned)
        actual = None
        if rng.random() < 0.5:  # received, often inside the window (created days earlier)
            ts = _time(rng) - dt.timedelta(milliseconds=rng.randint(0, 8 * 86_400_000))
            expected = ts + dt.timedelta(days=planned)
            actual = _time(rng) if rng.random() < 0.8 else expected
            ts = min(ts, actual)
        shipments.append(shipment(f"SHP-{i}", rng.choice(suppliers), ts, planned, expected, actual))
    # Malformed documents: a wrong type, null or missing field in each collection.
    for i, docs in enumerate((snapshots, orders, shipments)):
        for j in range(20):
            bad = dict(rng.choice(docs))
            field = rng.choice([k for k in bad if k not in ("ingested_at",)])
            mutation = rng.choice(["null", "missing", "string", "float"])
            if mutation == "missing":
                bad.pop(field)
            else:
                bad[field] = {"null": None, "string": "oops", "float": 1.5}[mutation]
            for key in ("snapshot_id", "order_id", "shipment_id"):
                if key in bad:
                    bad[key] = f"BAD-{i}-{j}"
            docs.append(bad)
    return {"inventory_fact": snapshots, "orders_fact": orders, "shipments_fact": shipments}


def _same(a, b, field: str = "") -> bool:
    if field.endswith("_ts") and a is not None and b is not None:  # ISO times: equal to the millisecond
        return abs(dt.datetime.fromisoformat(a) - dt.datetime.fromisoformat(b)) <= dt.timedelta(milliseconds=1)
    if field == "stockout_probability":  # Spark's sum of the count law vs SciPy's: to 1e-9 here (exact grid)
        return a is not None and b is not None and abs(a - b) < 1e-6
    if field.startswith("demand_at_risk"):  # wide laws are summed over blocks of a few units (kpis/sql.py)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_spark_kpis_equal_the_python_reference(kpi_db, spark):
    facts = _documents(random.Random(SEED))
    for collection, docs in facts.items():
        kpi_db[collection].insert_many([dict(d) for d in docs])
    dims = {name: dimension_documents(name) for name in DIMENSIONS}
    expected = reference_kpis(facts, dims, T)
    actual = {name: result.rows for name, result in compute_kpis(kpi_db, spark, T, now=T).results.items()}
    assert set(actual) == set(KPI_NAMES)
    assert len(expected["inventory_level"]) >= 10 and sum(r["orders"] for r in expected["regional_fulfillment"]) > 100
    assert any(r["shipments_received"] for r in expected["supplier_performance"])
    for name in KPI_NAMES:
        assert len(actual[name]) == len(expected[name]), name
        for got, want in zip(actual[name], expected[name]):
            assert list(got) == list(want), name  # same fields, same order
            for field in want:
                assert _same(got[field], want[field], field), (name, field, got, want)
