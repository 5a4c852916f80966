"""Data-quality jobs: the hot-store checks on their own 5-minute schedule (KPI sanity checks run with each KPI run,
archive verification with each archive run)."""

import dagster as dg

from scbda_assets.contract.stages import QUALITY, stage_tags
from scbda_assets.quality.checks import HOT_STORE_CHECKS

quality_job = dg.define_asset_job(
    "quality_job",
    selection=dg.AssetSelection.checks(*HOT_STORE_CHECKS),
    tags=stage_tags(QUALITY),
    description="Schema, business-rule and freshness checks of the MongoDB hot store.",
)

quality_schedule = dg.ScheduleDefinition(
    name="quality_schedule",
    job=quality_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
