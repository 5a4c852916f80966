"""archive domain wiring: the three archive assets, archive_job, archive_size_sensor and the Dagster run retention
sensor (resources come from the top-level Definitions)."""

import dagster as dg

from scbda_assets.archive.assets import archive_assets, archive_job
from scbda_assets.archive.run_retention import dagster_run_retention_sensor
from scbda_assets.archive.sensor import archive_size_sensor

defs = dg.Definitions(assets=[archive_assets], jobs=[archive_job],
                      sensors=[archive_size_sensor, dagster_run_retention_sensor])
