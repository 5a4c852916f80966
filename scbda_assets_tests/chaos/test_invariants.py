"""The checker catches each invariant's planted violation, and reports none on the same data without it."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np

from scbda_assets.chaos import invariants as inv
from scbda_assets.chaos.invariants import Movements, Observation

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
MINUTE_MS = 60_000


def _ids(n: int, prefix: str = "ORD") -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


def test_ids_once_catches_an_id_in_both_stores_and_twice_in_the_archive():
    hot, cold = _ids(500)[:300], _ids(500)[300:]
    assert inv.ids_once("orders_fact", hot, cold) == []

    in_both = inv.ids_once("orders_fact", hot, cold + ["ORD-000007"])
    assert [(v.invariant, v.count) for v in in_both] == [(inv.IDS_ONCE, 1)]
    assert "ORD-000007" in in_both[0].detail and "MongoDB and in the archive" in in_both[0].detail

    twice = inv.ids_once("orders_fact", hot, cold + ["ORD-000400", "ORD-000401"])
    assert [(v.count, "more than once in the archive" in v.detail) for v in twice] == [(2, True)]


def _chain(seed: int, pairs: int = 4, minutes: int = 30) -> Movements:
    """A consistent stock history: per pair, a snapshot each minute, orders and receipts in between."""
    rng = random.Random(seed)
    snap, out, got = [], [], []
    for p in range(pairs):
        key, on_hand = f"SKU-{p}|DC-1", 500
        for m in range(minutes):
            start = m * MINUTE_MS
            snap.append((key, start, on_hand))
            if rng.random() < 0.2:
                qty = rng.randint(50, 200)
                got.append((key, start + rng.randint(0, MINUTE_MS - 1), qty))
                on_hand += qty
            for _ in range(rng.randint(0, 6)):
                qty = min(on_hand, rng.randint(1, 9))
                out.append((key, start + rng.randint(0, MINUTE_MS - 1), qty))
                on_hand -= qty
    return _movements(snap, out, got)


def _movements(snap, out, got) -> Movements:
    def cols(rows):
        keys, ts, qty = zip(*rows) if rows else ((), (), ())
        return np.array(keys, dtype=str), np.array(ts, dtype=np.int64), np.array(qty, dtype=np.int64)

    return Movements(*cols(snap), *cols(out), *cols(got))


def test_stock_balance_holds_on_a_consistent_chain_and_catches_a_lost_order_and_a_ghost_receipt():
    chain = _chain(seed=7)
    assert len(chain.snap_ts) == 120 and len(chain.out_ts) > 100 and len(chain.in_ts) > 5
    assert inv.stock_balance(chain) == []

    lost = Movements(**{**chain.__dict__, "out_pair": chain.out_pair[1:], "out_ts": chain.out_ts[1:],
                        "out_qty": chain.out_qty[1:]})
    found = inv.stock_balance(lost)
    assert [(v.invariant, v.count) for v in found] == [(inv.STOCK_BALANCE, 1)]
    assert f"off by -{chain.out_qty[0]}" in found[0].detail

    ghost = Movements(**{**chain.__dict__, "in_pair": np.r_[chain.in_pair, ["SKU-2|DC-1"]],
                         "in_ts": np.r_[chain.in_ts, [10 * MINUTE_MS + 5]], "in_qty": np.r_[chain.in_qty, [40]]})
    assert [v.count for v in inv.stock_balance(ghost)] == [1]


def test_stock_balance_catches_two_snapshots_of_one_time_that_disagree():
    chain = _chain(seed=8, pairs=1)
    twin = Movements(**{**chain.__dict__, "snap_pair": np.r_[chain.snap_pair, ["SKU-0|DC-1"]],
                        "snap_ts": np.r_[chain.snap_ts, [chain.snap_ts[3]]],
                        "snap_on_hand": np.r_[chain.snap_on_hand, [chain.snap_on_hand[3] + 11]]})
    found = inv.stock_balance(twin)
    assert any("two snapshots at one time" in v.detail for v in found)


def test_no_ghost_shipments_catches_an_in_transit_shipment_the_state_does_not_hold():
    state = _ids(20, "SHP")
    assert inv.no_ghost_shipments(state[:15], state) == []
    found = inv.no_ghost_shipments([*state[:15], "SHP-GHOST"], state)
    assert [(v.invariant, v.count) for v in found] == [(inv.NO_GHOSTS, 1)] and "SHP-GHOST" in found[0].detail


def _history(as_ofs: list[str | None]) -> list[Observation]:
    return [Observation((T0 + dt.timedelta(seconds=5 * i)).isoformat(), "kpi:dc_utilization", a)
            for i, a in enumerate(as_ofs)]


def test_as_of_never_back_ignores_absent_keys_and_repeats_and_catches_a_step_back():
    minute = [(T0 + dt.timedelta(minutes=i)).isoformat() for i in range(4)]
    assert inv.as_of_never_back(_history([minute[0], minute[0], None, minute[1], minute[3]])) == []
    found = inv.as_of_never_back(_history([minute[0], minute[2], minute[1], minute[3]]))
    assert [(v.invariant, v.count) for v in found] == [(inv.AS_OF_FORWARD, 1)]
    assert minute[1] in found[0].detail and minute[2] in found[0].detail


def test_kpis_equal_reference_catches_a_differing_field_and_a_missing_row():
    reference = {"dc_utilization": [{"dc_id": "DC-1", "utilization": 0.5, "next_receipt_ts": None},
                                    {"dc_id": "DC-2", "utilization": 0.25, "next_receipt_ts": None}]}
    same = {"dc_utilization": [dict(row, utilization=row["utilization"] * (1 + 1e-12))
                               for row in reference["dc_utilization"]]}
    assert inv.kpis_equal_reference(same, reference) == []
    off = {"dc_utilization": [reference["dc_utilization"][0], dict(reference["dc_utilization"][1], utilization=0.26)]}
    found = inv.kpis_equal_reference(off, reference)
    assert [(v.invariant, v.count) for v in found] == [(inv.KPIS_EQUAL_REFERENCE, 1)]
    assert "row 1 utilization = 0.26" in found[0].detail
    assert "1 rows" in inv.kpis_equal_reference({"dc_utilization": off["dc_utilization"][:1]}, reference)[0].detail


def test_archival_resumed_needs_a_batch_completed_after_the_fault():
    fault_at = T0 + dt.timedelta(minutes=5)
    assert inv.archival_resumed(fault_at, [T0, fault_at + dt.timedelta(seconds=30)], "kill_run:archive") == []
    found = inv.archival_resumed(fault_at, [T0, fault_at], "kill_run:archive")
    assert [v.invariant for v in found] == [inv.ARCHIVAL_RESUMED] and "kill_run:archive" in found[0].detail


def test_nothing_left_after_ctrl_c_names_the_survivors():
    assert inv.nothing_left(True, []) == []
    found = inv.nothing_left(True, ["pid 41 dagster-daemon", "pid 42 streamlit"])
    assert [(v.invariant, v.count) for v in found] == [(inv.STOPS_CLEANLY, 2)] and "pid 41" in found[0].detail
    assert "still running" in inv.nothing_left(False, [])[0].detail
