"""The decisions domain's Dagster assets (thin wiring over ``daily_scores``)."""

import datetime as dt

import dagster as dg

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.decisions import daily_scores
from scbda_assets.domain.demand import ramadan_ranges
from scbda_assets.resources import MongoResource, SettingsResource

SCORE_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=-1)  # the day after must be done


@dg.asset(
    group_name="decisions",
    partitions_def=SCORE_PARTITIONS,
    deps=[dg.AssetKey("orders_hourly")],
    kinds={"python"},
    description="Forecast scores of one UTC day (docs/forecast.md): WAPE and bias of the next-24-hour forecast made "
    "at every whole hour, against realised demand and the simulator's true expected demand, beside the 7-day mean "
    "and the seed design's 15 min × 96. Hot + cold, from the history layer.",
)
def forecast_scores(context: dg.AssetExecutionContext, mongo: MongoResource, settings: SettingsResource):
    config = settings.get()
    day = context.partition_time_window.start.astimezone(dt.UTC)
    result = daily_scores.day_scores(mongo.database(), ArchiveStore(config.archive_uri), day,
                                     config.events_per_minute, ramadan_ranges(config.ramadan))
    scores = result["scores"]
    metadata = {f"{name}_{measure}": dg.MetadataValue.float(value) for name, values in scores.items()
                for measure, value in values.items() if value is not None}
    return dg.MaterializeResult(metadata={"origins": result["origins"], **metadata,
                                          "scores": dg.MetadataValue.json(scores)})
