"""archive_job, and archive_size_sensor: MongoDB above the size threshold → one archive_job run for the oldest eligible hours.

Also the archive's watchdog:
* a batch left incomplete is finished by a recovery run whatever the size; its run key carries an attempt number
  (the count of recovery runs of that batch that failed *or ended busy / lease lost*, which Dagster shows as
  SUCCESS), so such a recovery is requested again on the next tick; a parked batch (stuck.py) is not requested;
* an archive run that Dagster still shows in progress but whose worker died (SIGKILL, OOM: the default run launcher
  cannot health-check a worker) is recognised by the archive lease: no live lease of its own long after it started,
  on two consecutive ticks → the sensor marks it failed, which frees the stage's queue slot;
* while `scbda archive` (not a Dagster run) holds the lease, the sensor waits instead of requesting a run that could
  only fail as busy.
"""

import datetime as dt
import json

import dagster as dg
import pymongo
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scbda_assets.archive import layout, manifest_store, stuck
from scbda_assets.archive.assets import ARCHIVE_TAGS, MAX_RUNTIME_TAG, OUTCOME_TAG
from scbda_assets.archive.lease import LeaseHolder, current_holder, lease_timing, server_now
from scbda_assets.archive.partitions import ARCHIVE_PARTITIONS
from scbda_assets.archive.policy import run_key
from scbda_assets.archive.sizing import decide
from scbda_assets.archive.protocol import INCOMPLETE_DIR
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.errors import ServiceUnavailable
from scbda_assets.resources import MongoResource, SettingsResource
from scbda_assets.timeutil import HOUR, floor_hour, parse_iso

archive_job = dg.define_asset_job(
    "archive_job",
    selection=dg.AssetSelection.groups("archive"),
    tags={**ARCHIVE_TAGS, **MAX_RUNTIME_TAG},
    description="Archive hot MongoDB hours to Parquet (zero-loss protocol); requested by archive_size_sensor.",
)

RECOVERS_TAG = "scbda/recovers_batch"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
STARTUP_GRACE_S = 120.0  # resource setup (Spark session) before a run takes the lease


@dg.sensor(
    name="archive_size_sensor",
    job=archive_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads dbStats.dataSize; above SCBDA_ARCHIVE_THRESHOLD_MB requests archival of the oldest eligible "
    "hours down to the low-water mark (docs/archive.md). Finishes incomplete batches and fails archive runs whose worker died.",
)
def archive_size_sensor(context: dg.SensorEvaluationContext, mongo: MongoResource, settings: SettingsResource):
    config = settings.get()
    try:
        db = mongo.database()
        holder = current_holder(db)
    except ServiceUnavailable as exc:
        return dg.SkipReason(f"{exc}; will retry on the next tick")
    except pymongo.errors.PyMongoError as exc:
        return dg.SkipReason(f"MongoDB error while reading the archive lease: {str(exc).splitlines()[0]}; will retry")
    suspects = _fail_dead_runs(context, holder, server_now(db))
    context.update_cursor(json.dumps({"suspects": suspects}))
    if _archive_run_in_progress(context):
        # The run is removing the very documents a decision now would size; decide again once it has.
        return dg.SkipReason("an archive run is in progress; the next decision is taken after it ends")
    if holder is not None and _is_live(db, holder):
        return dg.SkipReason(f"the archive lease is held by {holder.owner}; the next decision is taken after it ends")
    recovery = _recovery_request(context, ArchiveStore(config.archive_uri), db)
    if recovery is not None:
        return recovery
    try:
        plan = decide(db, config, dt.datetime.now(dt.UTC))
    except ServiceUnavailable as exc:
        return dg.SkipReason(f"{exc}; will retry on the next tick")
    except pymongo.errors.PyMongoError as exc:
        return dg.SkipReason(f"MongoDB error while sizing the hot store: {str(exc).splitlines()[0]}; will retry")
    if not plan.archive:
        return dg.SkipReason(plan.reason)
    if plan.start < ARCHIVE_PARTITIONS.start:
        # Hours before the first partition (absurd or very old event times) are in the first partition's window
        # (assets.window_start): archive them with that one partition first — a range from 2025 to now would
        # record a materialization for every hour in between.
        first = last = ARCHIVE_PARTITIONS.start
    else:
        first, last = plan.start, plan.end - HOUR
    context.log.info(plan.reason)
    return dg.RunRequest(
        run_key=run_key(plan, after=_last_failed_run_id(context)),
        tags={
            **ARCHIVE_TAGS, **MAX_RUNTIME_TAG,
            ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(first),
            ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last),
            "scbda/archive_reason": plan.reason[:500],
        },
    )


def _recovery_request(context: dg.SensorEvaluationContext, store: ArchiveStore, db) -> dg.RunRequest | None:
    """A batch left incomplete by a crashed run, and no archive run under way: request a run over its window (every
    archive run finishes incomplete batches first), whatever the size — so a crash never waits for the threshold.
    The run key counts the recoveries of the batch that failed or ended busy: such a recovery is requested again.
    A batch whose manifest cannot be read is requested too (its window from the catalog, else the first hour)."""
    parked = stuck.parked_ids(db, store)
    for marker in store.list_files(INCOMPLETE_DIR):
        batch_id = marker.rsplit("/", 1)[-1]
        if not layout.is_batch_id(batch_id) or batch_id in parked:
            continue
        try:
            manifest = manifest_store.read_manifest(store, batch_id)
            state = manifest["status"] if manifest else None
        except manifest_store.ManifestUnreadable:
            manifest, state = None, "manifest unreadable"
        if state is None:
            continue  # crashed before writing anything; the next run clears the marker
        window = (manifest["start"], manifest["cutoff"]) if manifest else stuck.catalog_window(db, store, batch_id)
        first = max(floor_hour(parse_iso(window[0])), ARCHIVE_PARTITIONS.start) if window else ARCHIVE_PARTITIONS.start
        last = max(first, parse_iso(window[1]) - HOUR) if window else first
        attempt = _failed_recoveries(context, batch_id)
        return dg.RunRequest(
            run_key=f"recover-{batch_id}-attempt{attempt}",
            tags={**ARCHIVE_TAGS, **MAX_RUNTIME_TAG, RECOVERS_TAG: batch_id,
                  ASSET_PARTITION_RANGE_START_TAG: layout.partition_key(first),
                  ASSET_PARTITION_RANGE_END_TAG: layout.partition_key(last),
                  "scbda/archive_reason": f"finish incomplete batch {batch_id} ({state}), attempt {attempt + 1}"},
        )
    return None


def _instance(context: dg.SensorEvaluationContext):
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:  # evaluated without an instance (tests): no runs at all
        return None


def _failed_recoveries(context: dg.SensorEvaluationContext, batch_id: str) -> int:
    instance = _instance(context)
    if instance is None:
        return 0
    failed = instance.get_run_ids(filters=dg.RunsFilter(statuses=FAILED, tags={RECOVERS_TAG: batch_id}))
    busy = instance.get_run_ids(filters=dg.RunsFilter(tags={RECOVERS_TAG: batch_id, OUTCOME_TAG: "busy"}))
    return len(set(failed) | set(busy))


def _last_failed_run_id(context: dg.SensorEvaluationContext) -> str:
    """The newest failed (or busy) archive run: a new key after each, so such a run is requested again."""
    instance = _instance(context)
    if instance is None:
        return ""
    failed = instance.get_run_records(filters=dg.RunsFilter(statuses=FAILED, tags=ARCHIVE_TAGS), limit=1)
    busy = instance.get_run_records(filters=dg.RunsFilter(tags={**ARCHIVE_TAGS, OUTCOME_TAG: "busy"}), limit=1)
    newest = max(failed + busy, key=lambda record: record.create_timestamp, default=None)
    return newest.dagster_run.run_id[:8] if newest else ""


def _archive_run_in_progress(context: dg.SensorEvaluationContext) -> bool:
    instance = _instance(context)
    if instance is None:
        return False
    return bool(instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags=ARCHIVE_TAGS), limit=1))


def _is_live(db, holder: LeaseHolder) -> bool:
    if holder.expires_at is None:
        return False
    server_now = db.command("hello")["localTime"]
    server_now = server_now if server_now.tzinfo else server_now.replace(tzinfo=dt.UTC)
    return holder.expires_at > server_now


def _fail_dead_runs(context: dg.SensorEvaluationContext, holder: LeaseHolder | None,
                    db_now: dt.datetime) -> list[str]:
    """Mark failed the STARTED archive runs whose worker is gone: started long enough ago to hold the lease, yet the
    lease is not theirs (or expired by the database server's clock ``db_now``, the clock the lease is written in),
    on this tick and the previous one. Returns this tick's suspects."""
    instance = _instance(context)
    if instance is None:
        return []
    ttl, wait = lease_timing()
    grace = ttl + wait + STARTUP_GRACE_S
    previous = set(json.loads(context.cursor or "{}").get("suspects", []))
    now = dt.datetime.now(dt.UTC).timestamp()
    suspects = []
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags=ARCHIVE_TAGS))
    for record in records:
        run = record.dagster_run
        started = record.start_time or record.create_timestamp.timestamp()
        holds = holder is not None and run.run_id in holder.owner and holder.expires_at is not None \
            and holder.expires_at > db_now
        if holds or now - started < grace:
            continue
        if run.run_id in previous:
            message = (f"archive run {run.run_id} has shown no archive-lease heartbeat for over {grace:.0f} s: its "
                       f"worker is gone; marked failed so the archive stage continues (recovery finishes its batch)")
            context.log.warning(message)
            instance.report_run_failed(run, message)
        else:
            suspects.append(run.run_id)
    return suspects
