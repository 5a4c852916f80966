"""The short chaos lane (`make test`): the whole pipeline for 4 minutes under a seeded schedule of four fault kinds,
then Ctrl-C; every invariant must hold. The long lane is `scbda chaos --minutes 30` (docs/chaos.md)."""

from __future__ import annotations

import json
import os

import pytest

from scbda_assets.chaos.lane import LaneConfig, Lane
from scbda_assets.chaos.report import FINAL, format_table
from scbda_assets.chaos.schedule import CTRL_C, KILL_MONGOD, KILL_RUN, RACING_GENERATOR, RESTART_REDIS

SEED = 20261204
KINDS = (KILL_RUN, KILL_MONGOD, RESTART_REDIS, RACING_GENERATOR)


@pytest.mark.subprocess_clock
@pytest.mark.slow
def test_short_lane_under_faults_keeps_every_invariant(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("SCBDA_")]:
        monkeypatch.delenv(key)
    config = LaneConfig(minutes=4, seed=SEED, rate=7500, threshold_mb=8, settle_s=35, kinds=KINDS)
    report = Lane(config, tmp_path, echo=print).run()
    (tmp_path / "chaos-report.json").write_text(json.dumps(report, indent=2, default=str))
    print(format_table(report["table"]))

    steps = {step["label"].split(":")[0]: step for step in report["steps"]}
    assert set(KINDS) <= set(steps), report["schedule"]  # every kind was scheduled
    assert sum(step["injected"] for step in report["steps"]) >= len(KINDS) + 1, report["steps"]
    assert steps[CTRL_C]["violations"] == [], steps[CTRL_C]  # nothing `scbda run` started remains
    assert report["observations"] > 0 and report["figures"]["ids"]["orders_fact"]["mongodb"] > 0
    assert [step["violations"] for step in report["steps"] if step["violations"]] == [], report["table"]
    assert report["violations"] == 0 and report["steps"][-1]["label"] == FINAL
