"""history domain wiring: the hourly history assets and their check (resources come from the top level). The daily
trends (`history:daily`) are written by every KPI run, from these aggregates."""

import dagster as dg

from scbda_assets.history.assets import history_hourly
from scbda_assets.history.checks import orders_hourly_match_raw_events

defs = dg.Definitions(assets=[history_hourly], asset_checks=[orders_hourly_match_raw_events])
