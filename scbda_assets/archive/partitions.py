"""The archive's hourly partitions: one Dagster partition = one ``event_date=YYYY-MM-DD/hour=HH`` folder (UTC)."""

import dagster as dg

# Hours before the first partition (older backfills) are archived by `scbda archive`, which has no partition bound.
ARCHIVE_PARTITIONS = dg.HourlyPartitionsDefinition(start_date="2025-01-01-00:00", timezone="UTC")
