"""The fault schedule is a pure function of its seed, and the report charges a violation to the fault after which
its invariant first broke."""

from __future__ import annotations

from scbda_assets.chaos import invariants as inv
from scbda_assets.chaos.invariants import Violation
from scbda_assets.chaos.report import FINAL, Step, format_table, report_json, table_rows
from scbda_assets.chaos.schedule import FAULT_KINDS, KILL_RUN, PAUSE_RUN, RUN_STAGES, make_schedule


def test_one_seed_one_schedule_every_kind_before_a_repeat_spaced_by_the_settle_time():
    first, again, other = (make_schedule(seed, 12, settle_s=45) for seed in (11, 11, 12))
    assert first == again and first != other
    assert [f.kind for f in first[: len(FAULT_KINDS)]] != list(FAULT_KINDS)  # shuffled, yet ...
    assert sorted(f.kind for f in first[: len(FAULT_KINDS)]) == sorted(FAULT_KINDS)  # ... each kind once
    gaps = [b.at_s - a.at_s for a, b in zip(first, first[1:])]
    assert min(gaps) >= 45 - 15 and first[0].at_s >= 60 and first[-1].at_s <= 12 * 60 - 45
    assert all((f.stage in RUN_STAGES) == (f.kind in (KILL_RUN, PAUSE_RUN)) for f in first)


def test_a_short_lane_gets_the_kinds_it_asks_for_and_none_when_there_is_no_time():
    kinds = {f.kind for f in make_schedule(3, 4, ("kill_mongod", "restart_redis"), settle_s=40)}
    assert kinds == {"kill_mongod", "restart_redis"}
    assert make_schedule(3, 1, settle_s=45) == []


def test_a_violation_is_charged_once_to_the_fault_that_broke_its_invariant():
    ghost = Violation(inv.NO_GHOSTS, "1 in-transit shipments unknown ...")
    twice = Violation(inv.IDS_ONCE, "orders_fact: 2 ids in MongoDB and in the archive", 2)
    steps = [Step("kill_mongod", "t1", True, "", []),
             Step("racing_generator", "t2", True, "", [ghost]),
             Step("kill_run:archive", "t3", True, "", [ghost, twice]),
             Step("pause_run:kpis", "t4", False, "no kpis run in flight", [ghost, twice]),
             Step(FINAL, "t5", True, "", [ghost, twice])]
    rows = {row["fault"]: row for row in table_rows(steps)}
    assert rows["kill_mongod"]["violations"] == {}
    assert rows["racing_generator"]["violations"] == {inv.NO_GHOSTS: 1}
    assert rows["kill_run:archive"]["violations"] == {inv.IDS_ONCE: 2}
    assert rows["pause_run:kpis"] == {"fault": "pause_run:kpis", "count": 0, "not_injected": 1, "violations": {}}
    assert rows[FINAL]["violations"] == {}
    report = report_json({"seed": 1}, steps, {})
    assert report["violations"] == 2 and report["steps"][2]["violations"][1]["count"] == 2
    table = format_table(report["table"])
    assert "racing_generator" in table and f"{inv.NO_GHOSTS}: 1" in table and "(+1 skipped)" in table


def test_a_violation_found_while_an_archive_run_was_in_flight_is_marked_unsettled():
    twice = Violation(inv.IDS_ONCE, "orders_fact: 5 ids in MongoDB and in the archive", 5)
    rows = table_rows([Step("pause_run:archive", "t1", True, "", [twice], settled=False),
                       Step(FINAL, "t2", True, "", [], settled=True)])
    assert rows[0]["violations"] == {inv.IDS_ONCE + " (unsettled)": 5} and rows[1]["violations"] == {}
