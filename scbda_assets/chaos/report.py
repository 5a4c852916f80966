"""The lane's report: every fault injected and the checks after it, as JSON, and the table fault | count | violations.

A violation is charged to the first fault after which its invariant is found broken (an invariant that stays broken
is not charged again); the end check has its own row.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from scbda_assets.chaos.invariants import Violation

FINAL = "end of run"


@dataclasses.dataclass
class Step:
    """One fault (or the end) and the check that followed it."""

    label: str  # Fault.label, or FINAL
    at: str  # ISO time of the injection
    injected: bool  # False: there was nothing to inject into (e.g. no run of that stage in flight), see note
    note: str
    violations: list[Violation]
    settled: bool | None = None  # the check ran while no archive run was in flight (None: not checked)


def charged(steps: list[Step]) -> list[list[Violation]]:
    """Per step, the violations of invariants that were not already broken at the previous step."""
    before: set[str] = set()
    out = []
    for step in steps:
        now = {v.invariant for v in step.violations}
        out.append([v for v in step.violations if v.invariant not in before])
        before = now
    return out


def table_rows(steps: list[Step]) -> list[dict]:
    """fault | count | invariant violations (invariant: count, ...), faults in first-injected order."""
    rows: dict[str, dict] = {}
    for step, new in zip(steps, charged(steps)):
        row = rows.setdefault(step.label, {"fault": step.label, "count": 0, "not_injected": 0, "violations": Counter()})
        row["count" if step.injected else "not_injected"] += 1
        for violation in new:
            # Found while an archive run was in flight: a batch between its files and its delete may account for it.
            name = violation.invariant + (" (unsettled)" if step.settled is False else "")
            row["violations"][name] += violation.count
    return [{**row, "violations": dict(row["violations"])} for row in rows.values()]


def format_table(rows: list[dict]) -> str:
    width = max([len("fault"), *(len(r["fault"]) for r in rows)])
    lines = [f"{'fault':<{width}}  count  invariant violations", f"{'-' * width}  -----  --------------------"]
    for row in rows:
        found = "; ".join(f"{name}: {n}" for name, n in row["violations"].items()) or "none"
        count = f"{row['count']}" + (f" (+{row['not_injected']} skipped)" if row["not_injected"] else "")
        lines.append(f"{row['fault']:<{width}}  {count:<5}  {found}")
    return "\n".join(lines)


def report_json(settings: dict, steps: list[Step], extra: dict) -> dict:
    rows = table_rows(steps)
    return {
        **settings,
        "table": rows,
        "violations": sum(len(v) for v in charged(steps)),
        "steps": [{**dataclasses.asdict(step), "violations": [dataclasses.asdict(v) for v in step.violations]}
                  for step in steps],
        **extra,
    }
