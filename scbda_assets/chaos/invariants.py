"""The lane's invariants (SPEC §14) as pure functions of what was read from the stores: each returns its violations.

Plain data in, ``Violation`` lists out, no service touched: the checker's unit tests plant one violation of each kind
and see it reported. ``collect`` reads the stores into these inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scbda_assets.chaos.reference import same_value

IDS_ONCE = "every business id in exactly one store, once"
STOCK_BALANCE = "stock balance between consecutive snapshots"
NO_GHOSTS = "no in-transit shipment the state does not know"
AS_OF_FORWARD = "the live snapshot never went back"
KPIS_EQUAL_REFERENCE = "KPIs equal the reference over hot + cold"
ARCHIVAL_RESUMED = "archival resumed"
STOPS_CLEANLY = "Ctrl-C of `scbda run` leaves nothing it started"
INVARIANTS = (IDS_ONCE, STOCK_BALANCE, NO_GHOSTS, AS_OF_FORWARD, KPIS_EQUAL_REFERENCE, ARCHIVAL_RESUMED, STOPS_CLEANLY)

EXAMPLES = 3  # ids or pairs quoted in a violation's detail


@dataclasses.dataclass(frozen=True)
class Violation:
    invariant: str  # one of INVARIANTS
    detail: str  # one line: what was found, with a few examples
    count: int = 1  # how many ids, pairs, observations or fields


def _examples(items: Iterable) -> str:
    items = sorted(items, key=str)
    return ", ".join(map(str, items[:EXAMPLES])) + (", ..." if len(items) > EXAMPLES else "")


def ids_once(collection: str, hot_ids, cold_ids) -> list[Violation]:
    """No id twice in MongoDB, twice in the archive, or in both (ids: any sequence of strings or an Arrow array;
    columnar, for millions of ids)."""
    hot, cold = _value_counts(hot_ids), _value_counts(cold_ids)
    found = []
    for store, (values, counts) in (("MongoDB", hot), ("the archive", cold)):
        twice = values.filter(pc.greater(counts, 1)).to_pylist()
        if twice:
            found.append(Violation(IDS_ONCE, f"{collection}: {len(twice)} ids more than once in {store} "
                                             f"({_examples(twice)})", len(twice)))
    both = hot[0].filter(pc.is_in(hot[0], value_set=cold[0])).to_pylist() if len(hot[0]) and len(cold[0]) else []
    if both:
        found.append(Violation(IDS_ONCE, f"{collection}: {len(both)} ids in MongoDB and in the archive "
                                         f"({_examples(both)})", len(both)))
    return found


def _value_counts(ids) -> tuple[pa.Array, pa.Array]:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    elif not isinstance(ids, pa.Array):
        ids = pa.array(list(ids), pa.string())
    counted = pc.value_counts(ids.drop_null())
    return counted.field("values"), counted.field("counts")


@dataclasses.dataclass
class Movements:
    """Per (sku, dc) pair key: the stock snapshots and the stock movements, as parallel arrays (times in ms)."""

    snap_pair: np.ndarray  # str "sku|dc"
    snap_ts: np.ndarray  # int64 ms
    snap_on_hand: np.ndarray  # int64
    out_pair: np.ndarray  # fulfilled order units
    out_ts: np.ndarray
    out_qty: np.ndarray
    in_pair: np.ndarray  # received shipment units (at actual arrival)
    in_ts: np.ndarray
    in_qty: np.ndarray
    pair_names: np.ndarray | None = None  # when the pair keys are codes: the "sku|dc" of each code


def stock_balance(m: Movements) -> list[Violation]:
    """on_hand(t2) = on_hand(t1) − fulfilled in [t1, t2) + received in [t1, t2), exactly, for every pair of
    consecutive snapshots of one (sku, dc); two snapshots of one pair and time must agree."""
    broken, disagree, checked = [], [], 0
    out_by = _group(m.out_pair, m.out_ts, m.out_qty)
    in_by = _group(m.in_pair, m.in_ts, m.in_qty)
    for code, (ts, on_hand) in _group(m.snap_pair, m.snap_ts, m.snap_on_hand).items():
        pair = code if m.pair_names is None else str(m.pair_names[code])
        same_time = np.flatnonzero(np.diff(ts) == 0)
        if len(same_time) and np.any(on_hand[same_time] != on_hand[same_time + 1]):
            disagree.append(pair)
        keep = np.r_[True, np.diff(ts) != 0]
        ts, on_hand = ts[keep], on_hand[keep]
        if len(ts) < 2:
            continue
        moved = _net(in_by.get(code), ts) - _net(out_by.get(code), ts)
        bad = np.flatnonzero(on_hand[1:] - on_hand[:-1] != moved)
        checked += len(ts) - 1
        broken += [(pair, _iso_ms(ts[i + 1]), int(on_hand[i + 1] - on_hand[i] - moved[i])) for i in bad]
    found = []
    if broken:
        examples = _examples(f"{pair}@{at} off by {off}" for pair, at, off in broken)
        found.append(Violation(STOCK_BALANCE, f"{len(broken)} of {checked} consecutive snapshot pairs do not balance "
                                              f"({examples})", len(broken)))
    if disagree:
        found.append(Violation(STOCK_BALANCE, f"{len(disagree)} pairs have two snapshots at one time with different "
                                              f"stock ({_examples(disagree)})", len(disagree)))
    return found


def _group(keys: np.ndarray, ts: np.ndarray, values: np.ndarray) -> dict:
    order = np.lexsort((ts, keys))
    keys, ts, values = keys[order], ts[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(keys)]
    return {keys[s].item(): (ts[s:e], values[s:e]) for s, e in zip(starts, ends)}


def _net(group: tuple[np.ndarray, np.ndarray] | None, snap_ts: np.ndarray) -> np.ndarray:
    """Units moved in each [snap_ts[i], snap_ts[i+1])."""
    if group is None:
        return np.zeros(len(snap_ts) - 1, dtype=np.int64)
    ts, qty = group
    cumulative = np.r_[0, np.cumsum(qty)]
    below = cumulative[np.searchsorted(ts, snap_ts, side="left")]
    return np.diff(below)


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).isoformat(timespec="seconds")


def no_ghost_shipments(in_transit_ids: Iterable[str], state_po_ids: Iterable[str]) -> list[Violation]:
    """Every shipment stored as in transit is a purchase order the committed generator state holds."""
    ghosts = set(in_transit_ids) - set(state_po_ids)
    if not ghosts:
        return []
    return [Violation(NO_GHOSTS, f"{len(ghosts)} in-transit shipments unknown to the generator state "
                                 f"({_examples(ghosts)})", len(ghosts))]


@dataclasses.dataclass(frozen=True)
class Observation:
    """One read of a live key (Jepsen-style history): when it was read (lane clock), the key and its as-of."""

    at: str  # ISO time of the read
    key: str
    as_of: str | None  # None: the key was absent (expired or not yet written)


def as_of_never_back(history: list[Observation]) -> list[Violation]:
    """Per key, the as-of read never decreases along the history (an absent key is no observation)."""
    latest: dict[str, tuple[dt.datetime, Observation]] = {}
    back = []
    for obs in history:
        if obs.as_of is None:
            continue
        moment = dt.datetime.fromisoformat(obs.as_of)
        if obs.key in latest and moment < latest[obs.key][0]:
            back.append((obs, latest[obs.key][1]))
        if obs.key not in latest or moment > latest[obs.key][0]:
            latest[obs.key] = (moment, obs)
    if not back:
        return []
    obs, before = back[0]
    return [Violation(AS_OF_FORWARD, f"{len(back)} reads went back in time, e.g. {obs.key} at {obs.at}: as_of "
                                     f"{obs.as_of} after {before.as_of} (read at {before.at})", len(back))]


def kpis_equal_reference(actual: dict[str, list[dict]], expected: dict[str, list[dict]]) -> list[Violation]:
    """Field by field (``same_value``), the same rows in the same order."""
    found = []
    for name in sorted(expected):
        got, want = actual.get(name), expected[name]
        if got is None:
            found.append(Violation(KPIS_EQUAL_REFERENCE, f"{name}: missing"))
            continue
        if len(got) != len(want):
            found.append(Violation(KPIS_EQUAL_REFERENCE, f"{name}: {len(got)} rows, the reference has {len(want)}"))
            continue
        wrong = [(i, field, row.get(field), ref[field]) for i, (row, ref) in enumerate(zip(got, want))
                 for field in ref if not same_value(row.get(field), ref[field], field)]
        if wrong:
            i, field, value, ref = wrong[0]
            found.append(Violation(KPIS_EQUAL_REFERENCE, f"{name}: {len(wrong)} fields differ, e.g. row {i} {field} "
                                                         f"= {value!r}, the reference says {ref!r}", len(wrong)))
    return found


def archival_resumed(after: dt.datetime, complete_batches_created: Iterable[dt.datetime],
                     fault: str) -> list[Violation]:
    """A batch completed after the fault (its created_at later than ``after``)."""
    if any(created > after for created in complete_batches_created):
        return []
    return [Violation(ARCHIVAL_RESUMED, f"no archive batch completed after {fault} at "
                                        f"{after.isoformat(timespec='seconds')}")]


def nothing_left(ended: bool, left: list[str]) -> list[Violation]:
    """`scbda run` ended after Ctrl-C and no process of its tree outlived it."""
    if ended and not left:
        return []
    return [Violation(STOPS_CLEANLY, f"{'ended' if ended else 'still running 180 s after Ctrl-C'}; {len(left)} "
                                     f"processes left ({_examples(left)})", max(1, len(left)))]
