"""history domain wiring: regional_daily_history, history_job, history_schedule (resources come from the top level)."""

import dagster as dg

from scbda_assets.history.assets import (
    history_hourly,
    history_job,
    history_schedule,
    orders_hourly_match_raw_events,
    regional_daily_history,
)

defs = dg.Definitions(assets=[regional_daily_history, history_hourly], asset_checks=[orders_hourly_match_raw_events],
                      jobs=[history_job], schedules=[history_schedule])
