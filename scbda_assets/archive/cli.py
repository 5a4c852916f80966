"""`scbda archive [--dry-run | --status]`: the archival policy once, or the archive's status, with the same code as
the sensor and the archive assets. Both publish the status to Redis (``archive:status``) for the dashboard."""

from __future__ import annotations

import datetime as dt

import pymongo

from scbda_assets.archive import manifest as mf
from scbda_assets.archive import stuck
from scbda_assets.archive.lease import ArchiveLease, new_owner
from scbda_assets.archive.policy import MB
from scbda_assets.archive.sizing import decide
from scbda_assets.archive.protocol import INCOMPLETE_DIR, archive_range, recover
from scbda_assets.archive.status import archive_status, publish_status
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import ARCHIVE_STATUS_KEY
from scbda_assets.errors import ServiceUnavailable
from scbda_assets.resources import open_resources
from scbda_assets.settings import Settings


def archive_once(settings: Settings, *, dry_run: bool = False, now: dt.datetime | None = None,
                 retry_parked: bool = False) -> dict:
    """Plan; unless ``dry_run``, finish any incomplete batch and archive the planned hours as one batch.

    Returns a JSON-able summary: the decision and its figures, and (when run) the batch's manifest totals.
    """
    now = now or dt.datetime.now(dt.UTC)
    with open_resources(settings) as resources:
        return _archive_once(resources, settings, dry_run=dry_run, now=now, retry_parked=retry_parked)


def _archive_once(resources: dict, settings: Settings, *, dry_run: bool, now: dt.datetime,
                  retry_parked: bool = False) -> dict:
    db = resources["mongo"].database()
    store = ArchiveStore(settings.archive_uri)
    try:
        plan = decide(db, settings, now)
    except pymongo.errors.PyMongoError as exc:
        raise ServiceUnavailable(f"MongoDB failed while planning the archive: {str(exc).splitlines()[0]}") from None
    summary = {"dry_run": dry_run, "archive_uri": settings.archive_uri, **plan.summary()}
    incomplete = store.list_files(INCOMPLETE_DIR)
    summary["incomplete_batches"] = [path.rsplit("/", 1)[-1] for path in incomplete]
    if dry_run:
        return summary
    warnings = summary.setdefault("warnings", [])
    if not plan.archive and not incomplete:
        summary["status_published"] = publish(resources, archive_status(db, store, now=dt.datetime.now(dt.UTC)))
        return summary
    # The lease first (ArchiveBusy: another writer has it; nothing changed), then the Spark session.
    lease = ArchiveLease(db, new_owner("scbda archive")).acquire()
    try:
        if retry_parked:
            summary["unparked_batches"] = stuck.unpark_all(db, store)
        spark = resources["pyspark"].spark_session
        recovered = recover(db, spark, store, lease=lease, log=warnings.append)
        summary["recovered_batches"] = [_batch_summary(m) for m in recovered]
        batch = None
        if plan.archive:
            batch = archive_range(db, spark, store, start=plan.start, end=plan.end, now=now,
                                  safety_minutes=settings.archive_safety_minutes, lease=lease, log=warnings.append)
    finally:
        lease.release()
    summary["batch"] = _batch_summary(batch) if batch else None
    summary["data_size_after_mb"] = round(int(db.command("dbStats")["dataSize"]) / MB, 3)
    summary["status_published"] = publish(resources, archive_status(db, store, now=dt.datetime.now(dt.UTC)))
    return summary


def status_once(settings: Settings, *, now: dt.datetime | None = None) -> tuple[dict, str | None]:
    """The archive status (``status.archive_status``), published to Redis; returns it and the publish error."""
    with open_resources(settings) as resources:
        try:
            status = archive_status(resources["mongo"].database(), ArchiveStore(settings.archive_uri),
                                    now=now or dt.datetime.now(dt.UTC))
        except pymongo.errors.PyMongoError as exc:
            raise ServiceUnavailable(f"MongoDB failed while reading the archive status: {str(exc).splitlines()[0]}") \
                from None
        published = publish(resources, status)
    return status, (None if published is True else published)


def publish(resources: dict, status: dict) -> bool | str:
    """Write the status to Redis; True, or the one-line reason it could not be written (archival goes on)."""
    redis = resources["redis"]
    try:
        publish_status(redis.client(), redis.key(ARCHIVE_STATUS_KEY), status)
        return True
    except Exception as exc:  # Redis down must never fail an archive run: the status is informational
        return f"archive status not published to Redis: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    finally:
        redis.teardown_after_execution(None)


def _batch_summary(manifest: dict) -> dict:
    return {
        "batch_id": manifest["batch_id"],
        "status": manifest["status"],
        "cutoff": manifest["cutoff"],
        **mf.totals(manifest),
        "timings_s": manifest.get("timings_s", {}),
        "collections": {
            name: {k: entry[k] for k in ("record_count", "malformed_count", "deleted_count", "bytes_written")}
            | {"partitions": len(entry["partitions"])}
            for name, entry in manifest["collections"].items()
            if entry
        },
    }
