"""archive domain wiring: the three archive assets, archive_job, archive_size_sensor and the Dagster run retention
sensor (resources come from the top-level Definitions)."""

import dagster as dg

from scbda_assets.archive.assets import archive_assets
from scbda_assets.archive.jobs import archive_job, archive_size_sensor
from scbda_assets.archive.run_retention import dagster_run_retention_sensor

defs = dg.Definitions(assets=[archive_assets], jobs=[archive_job],
                      sensors=[archive_size_sensor, dagster_run_retention_sensor])
