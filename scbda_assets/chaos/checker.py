"""The checks: the store invariants on what MongoDB and the archive hold now, and the KPIs against the reference.

``check_stores`` reads (``collect``) and judges (``invariants``); ``check_kpis`` runs the pipeline's own KPI code at
the committed clock (a past as-of: published nowhere) and the plain-Python reference over hot + cold.
"""

from __future__ import annotations

import datetime as dt

from scbda_assets.chaos import collect
from scbda_assets.chaos import invariants as inv
from scbda_assets.chaos.invariants import Observation, Violation
from scbda_assets.chaos.reference import order_demand_columns, reference_kpis
from scbda_assets.contract import SPECS_BY_COLLECTION
from scbda_assets.domain.reference import DIMENSIONS
from scbda_assets.errors import first_line
from scbda_assets.settings import Settings


def check_stores(db, archive_uri: str, observations: list[Observation]) -> tuple[list[Violation], dict]:
    """Ids once, no ghosts, the stock balance and the as-of history, on what MongoDB and the archive hold now."""
    state = collect.read_state(db)  # first: facts read after it may only be newer
    pending = collect.read_pending(db)
    hot = collect.read_hot(db)
    cold = collect.read_cold(archive_uri)
    found: list[Violation] = []
    counts = {}
    for collection, table in hot.items():
        id_field = SPECS_BY_COLLECTION[collection].id_field
        found += inv.ids_once(collection, table[id_field], cold.tables[collection][id_field])
        counts[collection] = {"mongodb": table.num_rows, "archive": cold.tables[collection].num_rows}
    merged = {c: collect.unique_by_id([hot[c], cold.tables[c], pending[c]], SPECS_BY_COLLECTION[c].id_field)
              for c in hot}
    if state.as_of is not None:
        found += inv.no_ghost_shipments(collect.in_transit_ids(merged["shipments_fact"], state.as_of), state.po_ids)
        found += inv.stock_balance(collect.movements(merged["orders_fact"], merged["shipments_fact"],
                                                     merged["inventory_fact"], state.as_of))
    found += inv.as_of_never_back(observations)
    return found, {"ids": counts, "unreadable_archive_files": cold.unreadable,
                   "state_as_of": state.as_of.isoformat() if state.as_of else None}


def check_kpis(settings: Settings, db) -> tuple[list[Violation], dict]:
    """The KPIs at the committed clock (computed by the pipeline's own code, published nowhere) against the
    plain-Python reference over hot + cold (``db`` reads tz-aware times)."""
    from scbda_assets.kpis.refresh import refresh_kpis_once

    state = collect.read_state(db)
    if state.as_of is None:
        return [Violation(inv.KPIS_EQUAL_REFERENCE, "no generator state: nothing to compare")], {}
    as_of = min(state.as_of, dt.datetime.now(dt.UTC).replace(second=0, microsecond=0))
    try:
        # A clock 10 minutes on makes the as-of "past": payloads come back, nothing is published.
        summary = refresh_kpis_once(settings, as_of=as_of, clock=lambda: as_of + dt.timedelta(minutes=10))
    except Exception as exc:  # noqa: BLE001 - SPEC §8.11: no bad file may stop every KPI; a finding, not a crash
        return [Violation(inv.KPIS_EQUAL_REFERENCE, f"the pipeline's KPI run failed at {as_of.isoformat()}: "
                                                    f"{type(exc).__name__}: {first_line(exc)}")], {}
    actual = {key.removeprefix("kpi:"): payload["rows"] for key, payload in summary.get("payloads", {}).items()
              if key.startswith("kpi:") and "rows" in payload}
    facts, demand = _reference_inputs(settings, db, as_of)
    dims = {name: list(db[name].find({}, {"_id": 0})) for name in DIMENSIONS}
    expected = reference_kpis(facts, dims, as_of, supplier_days=settings.supplier_window_days, demand=demand)
    return inv.kpis_equal_reference(actual, expected), {"kpi_as_of": as_of.isoformat()}


def _reference_inputs(settings: Settings, db, as_of: dt.datetime):
    """Whole documents of the live windows (30 minutes covers them all) and every shipment, from both stores; the
    7-day demand columnar over every order."""
    start = as_of - dt.timedelta(minutes=30)
    window = {"orders_fact": "order_ts", "inventory_fact": "inventory_ts", "shipments_fact": None}
    facts = {}
    for collection, field in window.items():
        query = {field: {"$gte": start, "$lt": as_of}} if field else {}
        facts[collection] = list(db[collection].find(query))
        facts[collection] += collect.cold_documents(settings.archive_uri, SPECS_BY_COLLECTION[collection],
                                                    field, start, as_of)
    orders = collect.unique_by_id([collect.read_demand_hot(db), collect.read_demand_cold(settings.archive_uri)],
                                  "order_id")
    return facts, order_demand_columns(orders, as_of)
