"""The alert digest as a pure state machine: ``step(state, observation, now) -> (state, text | None)``.

An observation is what is wrong now: pairs in critical stockout risk, suppliers with overdue purchase orders,
failing asset checks, whether the KPIs are stale (> 3 min), and run failures seen since the last step. A digest is
posted only when what is wrong differs from what the last digest said (quiet until something changes), never twice
within ``MIN_INTERVAL`` (changes inside it wait and are posted together, net), and says "all clear" when the last
problem clears. The Dagster sensor (``sensors.py``) keeps the state in its cursor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

MIN_INTERVAL = dt.timedelta(minutes=1)
STALE_AFTER = dt.timedelta(minutes=3)
_KINDS = (("critical_pairs", "critical stockout risk"), ("overdue_suppliers", "supplier overdue"),
          ("failing_checks", "failing check"), ("stale", "KPIs stale"))


@dataclasses.dataclass(frozen=True)
class Observation:
    critical_pairs: frozenset[str] = frozenset()
    overdue_suppliers: frozenset[str] = frozenset()
    failing_checks: frozenset[str] = frozenset()
    stale: frozenset[str] = frozenset()  # {"kpis"} when the KPIs are older than STALE_AFTER
    failed_runs: tuple[str, ...] = ()  # run failures since the previous step (events, not state)


@dataclasses.dataclass(frozen=True)
class State:
    reported: dict = dataclasses.field(default_factory=dict)  # kind -> sorted list, as the last digest said
    pending_failures: tuple[str, ...] = ()
    last_post: str | None = None  # ISO time

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> State:
        if not data:
            return cls()
        return cls(data.get("reported", {}), tuple(data.get("pending_failures", ())), data.get("last_post"))


def step(state: State, observation: Observation, now: dt.datetime) -> tuple[State, str | None]:
    """The new state and the digest to post now (None: nothing to say, or too soon after the last post)."""
    current = {kind: sorted(getattr(observation, kind)) for kind, _ in _KINDS}
    failures = state.pending_failures + tuple(observation.failed_runs)
    lines = []
    for kind, label in _KINDS:
        before, after = set(state.reported.get(kind, [])), set(current[kind])
        if after - before:
            lines.append(f"🔴 {label}: " + ", ".join(sorted(after - before)))
        if before - after:
            lines.append(f"✅ {label} cleared: " + ", ".join(sorted(before - after)))
    if failures:
        lines.append("🔴 run failed: " + ", ".join(failures))
    if not lines:
        return dataclasses.replace(state, pending_failures=failures), None
    last = dt.datetime.fromisoformat(state.last_post) if state.last_post else None
    if last is not None and now - last < MIN_INTERVAL:
        return dataclasses.replace(state, pending_failures=failures), None
    open_now = sum(len(v) for v in current.values())
    had_problems = any(state.reported.get(kind) for kind, _ in _KINDS)
    if open_now == 0 and had_problems and not failures:
        lines.append("All clear: nothing critical, overdue, failing or stale.")
    header = f"SCBDA alerts {now.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC — {open_now} open"
    return State(current, (), now.isoformat()), "\n".join([header, *lines])
