"""kpis domain wiring: the KPI multi-asset, its job and its minute schedule (resources come from the top level)."""

import dagster as dg

from scbda_assets.kpis.assets import kpis
from scbda_assets.kpis.jobs import kpi_job, kpi_schedule

defs = dg.Definitions(assets=[kpis], jobs=[kpi_job], schedules=[kpi_schedule])
