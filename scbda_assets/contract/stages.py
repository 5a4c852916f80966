"""The run tag naming the pipeline stage a Dagster run belongs to (run queue limits, sensors and retention read it)."""

from __future__ import annotations

STAGE_TAG = "scbda/stage"
GENERATOR, ARCHIVE, KPIS, HISTORY, QUALITY = "generator", "archive", "kpis", "history", "quality"


def stage_tags(stage: str) -> dict[str, str]:
    """The tags of a run of ``stage``: ``{"scbda/stage": stage}``."""
    return {STAGE_TAG: stage}
