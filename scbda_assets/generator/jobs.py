"""The live stream: a minute schedule that materializes the next minute(s) of events (thin wiring).

Each tick requests one run of ``generator_job`` (run key = the tick, so a tick never runs twice). The run writes
every whole minute from the stored clock up to the tick, at most ``SCBDA_CATCHUP_MAX_MINUTES`` (after downtime the
stream catches up over a few ticks, without gaps or overlaps). The reference dimensions are part of the run when
the dims collections are missing or differ from the stream's rate (the configured rate before a stream exists:
fresh `dagster dev`, changed rate), or when MongoDB cannot be checked (the run then reports the service error).
The stream's rate, not the setting, once it exists: a backfill and the schedule never overwrite each other's
capacities.
"""


import dagster as dg

from scbda_assets.contract.stages import GENERATOR, stage_tags
from scbda_assets.domain.calibration import expected_dimensions
from scbda_assets.generator import claim, store
from scbda_assets.generator.assets import DIMENSION_NAMES, FACT_NAMES
from scbda_assets.resources import MongoResource, SettingsResource

GENERATOR_TAGS = stage_tags(GENERATOR)

generator_job = dg.define_asset_job(
    "generator_job",
    # The hot-store checks scan whole collections: they run on quality_schedule, not in every minute's run.
    selection=dg.AssetSelection.assets(*DIMENSION_NAMES, *FACT_NAMES).without_checks(),
    tags=GENERATOR_TAGS,
    description="Reference dimensions (upsert) and the next minutes of events.",
)


def run_selection(mongo: MongoResource, settings: SettingsResource) -> list[dg.AssetKey]:
    """The assets one tick materializes: the facts, plus the dimensions when they are not current."""
    facts = [dg.AssetKey(name) for name in FACT_NAMES]
    try:
        db = mongo.database()
        rate = claim.stream_rate(db, settings.get().events_per_minute)
        current = store.dimensions_current(db, expected_dimensions(rate))
    except Exception:  # unreachable or misconfigured: let the run include everything and fail with one clear line
        current = False
    return facts if current else [dg.AssetKey(name) for name in DIMENSION_NAMES] + facts


@dg.schedule(
    name="generator_schedule",
    cron_schedule="* * * * *",
    job=generator_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
    description="Every minute: the next minute of events (live stream), catching up after downtime.",
)
def generator_schedule(context: dg.ScheduleEvaluationContext, mongo: MongoResource, settings: SettingsResource):
    tick = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=tick.isoformat(),
        tags=GENERATOR_TAGS,
        asset_selection=run_selection(mongo, settings),
        asset_check_keys=[],
    )
