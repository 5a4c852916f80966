"""archive domain wiring: the three archive assets, archive_job and archive_size_sensor (resources come from the
top-level Definitions)."""

import dagster as dg

from scbda_assets.archive.assets import archive_assets, archive_job
from scbda_assets.archive.sensor import archive_size_sensor

defs = dg.Definitions(assets=[archive_assets], jobs=[archive_job], sensors=[archive_size_sensor])
