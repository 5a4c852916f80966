"""decisions domain wiring: the daily forecast scores (resources come from the top level)."""

import dagster as dg

from scbda_assets.decisions.assets import forecast_scores

defs = dg.Definitions(assets=[forecast_scores])
