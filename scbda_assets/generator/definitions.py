"""generator domain wiring: reference dimensions, the hot-store multi-asset, generator_job and its schedule."""

import dagster as dg

from scbda_assets.generator.assets import REFERENCE_ASSETS, hot_store
from scbda_assets.generator.jobs import generator_job, generator_schedule

defs = dg.Definitions(assets=[*REFERENCE_ASSETS, hot_store], jobs=[generator_job], schedules=[generator_schedule])
