"""The history layer's assets: ``history_hourly`` (``orders_hourly``, ``shipments_history``), hourly-partitioned like
the archive and backfillable from the UI (the logic lives in ``maintain``, ``orders_hourly`` and ``shipments``)."""

import datetime as dt
import time

import dagster as dg

from scbda_assets.archive.partitions import ARCHIVE_PARTITIONS
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract.stages import HISTORY, stage_tags
from scbda_assets.history import maintain
from scbda_assets.history.store import history_database
from scbda_assets.resources import MongoResource, SettingsResource

HISTORY_TAGS = stage_tags(HISTORY)


HISTORY_PARTITIONS = ARCHIVE_PARTITIONS  # one partition = one event hour, as the archive's


@dg.multi_asset(
    name="history_hourly",
    specs=[
        dg.AssetSpec(
            "orders_hourly",
            group_name="history",
            deps=[dg.AssetKey("orders_fact"), dg.AssetKey("orders_archive")],
            kinds={"mongodb"},
            description="Orders per (hour, sku, dc): counts and sums (requested, fulfilled, revenue, lost, in full), "
            "built from MongoDB and the Parquet archive together, de-duplicated by order_id. Kept in the "
            "<db>_history database (outside the size the archive sensor measures). Every KPI run refreshes "
            "missing, late and newly archived hours; materialize partitions to rebuild hours on demand.",
        ),
        dg.AssetSpec(
            "shipments_history",
            group_name="history",
            deps=[dg.AssetKey("shipments_fact"), dg.AssetKey("shipments_archive")],
            kinds={"mongodb"},
            description="Purchase orders (one row per shipment_id, ~18 a day), hot ∪ cold, for the supplier sums "
            "and in-transit state of any window. Partition = shipments created in that hour.",
        ),
    ],
    partitions_def=HISTORY_PARTITIONS,
    op_tags=HISTORY_TAGS,
)
def history_hourly(context: dg.AssetExecutionContext, mongo: MongoResource, settings: SettingsResource):
    """Rebuild the selected hours from the raw events of both stores."""
    db = mongo.database()
    archive = ArchiveStore(settings.get().archive_uri)
    window = context.partition_time_window
    hour, totals = window.start.astimezone(dt.UTC), {"orders": 0, "shipments_from_mongodb": 0,
                                                     "shipments_from_archive": 0, "hours": 0}
    started = time.monotonic()
    while hour < window.end:
        report = maintain.rebuild_hour(db, archive, hour, now=dt.datetime.now(dt.UTC))
        for key in ("orders", "shipments_from_mongodb", "shipments_from_archive"):
            totals[key] += report[key]
        totals["hours"] += 1
        hour += dt.timedelta(hours=1)
    seconds = round(time.monotonic() - started, 3)
    yield dg.MaterializeResult(asset_key="orders_hourly", metadata={
        "dagster/row_count": totals["orders"], "hours": totals["hours"], "duration_s": seconds,
        "database": history_database(db).name})
    yield dg.MaterializeResult(asset_key="shipments_history", metadata={
        "dagster/row_count": totals["shipments_from_mongodb"] + totals["shipments_from_archive"],
        "from_mongodb": totals["shipments_from_mongodb"], "from_archive": totals["shipments_from_archive"]})
