"""archive_size_sensor: MongoDB above the size threshold → one archive_job run for the oldest eligible hours."""


import datetime as dt

import dagster as dg
import pymongo
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout
from scbda_assets.archive import manifest as mf
from scbda_assets.archive.assets import STAGE_TAG, archive_job
from scbda_assets.archive.partitions import ARCHIVE_PARTITIONS
from scbda_assets.archive.planning import run_key
from scbda_assets.archive.policy import decide
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.resources import MongoResource, ServiceUnavailable, SettingsResource


@dg.sensor(
    name="archive_size_sensor",
    job=archive_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads dbStats.dataSize; above SCBDA_ARCHIVE_THRESHOLD_MB requests archival of the oldest eligible "
    "hours down to the low-water mark (SPEC §8).",
)
def archive_size_sensor(context: dg.SensorEvaluationContext, mongo: MongoResource, settings: SettingsResource):
    config = settings.get()
    recovery = _recovery_request(context, ArchiveStore(config.archive_uri))
    if recovery is not None:
        return recovery
    if _archive_run_in_progress(context):
        # The run is removing the very documents a decision now would size; decide again once it has.
        return dg.SkipReason("an archive run is in progress; the next decision is taken after it ends")
    try:
        plan = decide(mongo.database(), config, dt.datetime.now(dt.UTC))
    except ServiceUnavailable as exc:
        return dg.SkipReason(f"{exc}; will retry on the next tick")
    except pymongo.errors.PyMongoError as exc:
        return dg.SkipReason(f"MongoDB error while sizing the hot store: {str(exc).splitlines()[0]}; will retry")
    if not plan.archive:
        return dg.SkipReason(plan.reason)
    first = max(plan.start, ARCHIVE_PARTITIONS.start)  # older hours: `scbda archive` (see docs/archive.md)
    last = plan.end - layout.HOUR
    if last < first:
        return dg.SkipReason(f"eligible hours predate the first archive partition: run `scbda archive`")
    context.log.info(plan.reason)
    return dg.RunRequest(
        run_key=run_key(plan),
        tags={
            **STAGE_TAG,
            ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(first),
            ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last),
            "scbda/archive_reason": plan.reason[:500],
        },
    )


def _recovery_request(context: dg.SensorEvaluationContext, store: ArchiveStore) -> dg.RunRequest | None:
    """A batch left incomplete by a crashed run, and no archive run under way: request a run over its window (every
    archive run finishes incomplete batches first), whatever the size — so a crash never waits for the threshold."""
    markers = store.list_files(INCOMPLETE_DIR)
    if not markers or _archive_run_in_progress(context):
        return None
    batch_id = markers[0].rsplit("/", 1)[-1]
    if not store.exists(layout.manifest_file(batch_id)):
        return None  # crashed before writing anything; the next run clears the marker
    manifest = mf.loads(store.read_text(layout.manifest_file(batch_id)))
    first = max(layout.floor_hour(mf.parse_iso(manifest["start"])), ARCHIVE_PARTITIONS.start)
    last = max(first, mf.parse_iso(manifest["cutoff"]) - layout.HOUR)
    return dg.RunRequest(
        run_key=f"recover-{batch_id}",
        tags={**STAGE_TAG, ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(first),
              ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last),
              "scbda/archive_reason": f"finish incomplete batch {batch_id} ({manifest['status']})"},
    )


def _archive_run_in_progress(context: dg.SensorEvaluationContext) -> bool:
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # evaluated without an instance (tests): nothing can be running
        return False
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                        dg.DagsterRunStatus.STARTED], tags=STAGE_TAG),
        limit=1,
    )
    return bool(runs)
