"""The archive assets: one multi-asset (one batch, one manifest per run) over the three fact collections, hourly
partitioned; a partition-range run archives its whole time window at once (thin wiring over protocol.py).

Every run that targets them — archive_job from the sensor, a UI materialization (the implicit asset job), a backfill —
queues in the Dagster pool ``archive`` (limit 1, run granularity: dagster_instance.yaml) and then holds the archive
lease (lease.py), which also excludes `scbda archive`. A run that finds the lease taken skips its outputs with one
warning line naming the holder (no traceback, nothing changed) and is tagged ``scbda/archive_outcome=busy`` so the
sensor asks again (so is a run fenced off mid-batch: LeaseLost). A run whose recovery of an earlier batch failed
fails (the sensor asks again; the batch is parked after a few failures, see stuck.py).
"""


import datetime as dt
import time

import dagster as dg

from scbda_assets.archive.lease import ArchiveBusy, ArchiveLease, LeaseLost, new_owner
from scbda_assets.archive.partitions import ARCHIVE_PARTITIONS
from scbda_assets.archive.protocol import RecoveryFailed, archive_range
from scbda_assets.archive.schema import SPECS, SPECS_BY_ASSET
from scbda_assets.archive import manifest_store
from scbda_assets.archive.status import archive_status, publish_status
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import ARCHIVE_STATUS_KEY
from scbda_assets.contract.stages import ARCHIVE, stage_tags
from scbda_assets.resources import MongoResource, RedisResource, SettingsResource, SparkResource

ARCHIVE_TAGS = stage_tags(ARCHIVE)
ARCHIVE_POOL = "archive"
OUTCOME_TAG = "scbda/archive_outcome"
EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
# Run monitoring fails an archive run still in progress after this long (a hung run no longer blocks the stage).
MAX_RUNTIME_TAG = {"dagster/max_runtime": str(3 * 3600)}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            spec.asset,
            deps=[dg.AssetKey(spec.collection)],
            group_name="archive",
            description=f"Parquet archive of `{spec.collection}`: <archive_root>/{spec.collection}/"
            "event_date=YYYY-MM-DD/hour=HH/part-<batch_id>-*.parquet (docs/archive.md).",
            kinds={"parquet", "spark"},
            skippable=True,  # a run that finds another writer holding the archive lease materializes nothing
        )
        for spec in SPECS
    ],
    partitions_def=ARCHIVE_PARTITIONS,
    # A UI backfill of N hours is one run over the whole range (one batch, one lease), not N queued runs.
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    op_tags=ARCHIVE_TAGS,
    pool=ARCHIVE_POOL,
)
def archive_assets(
    context: dg.AssetExecutionContext, mongo: MongoResource, pyspark: SparkResource, settings: SettingsResource,
    redis: RedisResource,
):
    config = settings.get()
    window = context.partition_time_window
    selected = [SPECS_BY_ASSET[key.to_user_string()] for key in context.selected_asset_keys]
    started = time.monotonic()
    db = mongo.database()
    try:
        with ArchiveLease(db, new_owner("dagster run", context.run.run_id)) as lease:
            manifest = archive_range(
                db,
                pyspark.spark_session,
                ArchiveStore(config.archive_uri),
                start=window_start(window.start),
                end=window.end.astimezone(dt.UTC),
                now=dt.datetime.now(dt.UTC),
                safety_minutes=config.archive_safety_minutes,
                collections=[spec.collection for spec in selected],
                checkpoint=lambda step: context.log.debug(f"archive step done: {step}"),
                lease=lease,
                log=context.log.warning,
            )
    except (ArchiveBusy, LeaseLost) as exc:
        context.log.warning(str(exc))
        context.instance.add_run_tags(context.run.run_id, {OUTCOME_TAG: "busy"})
        return
    except RecoveryFailed as exc:  # counted; the sensor requests the recovery again (parked after a few)
        raise dg.Failure(description=str(exc)) from None
    seconds = round(time.monotonic() - started, 3)
    store = ArchiveStore(config.archive_uri)
    status = archive_status(db, store, now=dt.datetime.now(dt.UTC))
    try:
        publish_status(redis.client(), redis.key(ARCHIVE_STATUS_KEY), status)
    except Exception as exc:  # the status is informational: Redis down never fails an archive run
        context.log.warning(f"archive status not published to Redis: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    for spec in selected:
        entry = (manifest or {}).get("collections", {}).get(spec.collection) or {}
        overall = status["collections"][spec.collection]
        yield dg.MaterializeResult(
            asset_key=spec.asset,
            metadata={
                "dagster/row_count": entry.get("record_count", 0),
                "batch_id": (manifest or {}).get("batch_id", ""),
                "cutoff": (manifest or {}).get("cutoff", ""),
                "window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "malformed_count": entry.get("malformed_count", 0),
                "deleted_count": entry.get("deleted_count") or 0,
                "bytes_written": entry.get("bytes_written", 0),
                "source_bytes": entry.get("source_bytes", 0),
                "partitions": dg.MetadataValue.json(entry.get("partitions", [])),
                "manifest": store.uri(manifest_store.versions(store, manifest["batch_id"])[0][1]) if manifest else "",
                "duration_s": seconds,
                # The whole archive of this collection (SPEC §8 status), and the archive's last runs.
                "archived_documents_total": overall["documents"],
                "archived_bytes_total": overall["bytes_written"],
                "archived_source_bytes_total": overall["source_bytes"],
                "oldest_archived_event": overall["oldest_event_ts"] or "",
                "newest_archived_event": overall["newest_event_ts"] or "",
                "last_runs": dg.MetadataValue.json(status["last_runs"][:5]),
                "incomplete_batches": dg.MetadataValue.json(status["incomplete_batches"]),
                "stuck_batches": dg.MetadataValue.json(status["stuck_batches"]),
            },
        )


def window_start(start: dt.datetime) -> dt.datetime:
    """The first partition also covers every hour before it: a document with an absurd past event time (1970)
    is archived by a run that includes the first partition, into the folder of its own event hour."""
    start = start.astimezone(dt.UTC)
    return EARLIEST if start <= ARCHIVE_PARTITIONS.start else start


