"""Data-quality wiring: hot-store checks on their own 5-minute schedule; KPI sanity checks run with each KPI run,
archive verification with each archive run."""

import dagster as dg

from scbda_assets.quality.archive_quarantine import QUARANTINE_CHECKS
from scbda_assets.quality.checks import ARCHIVE_CHECKS, HOT_STORE_CHECKS
from scbda_assets.quality.jobs import quality_job, quality_schedule
from scbda_assets.quality.kpi_checks import KPI_CHECKS

defs = dg.Definitions(
    asset_checks=[*HOT_STORE_CHECKS, *KPI_CHECKS, *ARCHIVE_CHECKS, *QUARANTINE_CHECKS],
    jobs=[quality_job],
    schedules=[quality_schedule],
)
