"""The KPIs' live-window inputs when the archive already holds part of the window (no Dagster here).

The live window [E − 15 min, E) is read from MongoDB alone (``kpis/pushdown.py``): at a live as-of the safety horizon
(≥ 16 min) keeps every archived hour older than the window. An on-demand run at an as-of in the past (``scbda kpis
--as-of``) can ask for a window whose hour has been archived since; read from MongoDB alone its orders and snapshots
would be missing, and archival would change a KPI value. For such a window the inputs here read both stores, the
same way as the history layer: the well-formed archived rows of the hours the window touches plus MongoDB's,
de-duplicated by business id, then the same sufficient statistics as the pushdown (per pair).

Well-formed, as in each pushdown: orders by the archive's ``$jsonSchema`` (``orders_hourly.order_sums``); snapshots
by the types of the fields the KPIs read, and archived snapshots with ``raw_json`` null.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from pymongo.database import Database
from pymongoarrow.api import Schema, aggregate_arrow_all

from scbda_assets.archive.schema import INVENTORY
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.history import cold, orders_hourly
from scbda_assets.timeutil import hours_touching

_SNAPSHOT = pa.schema([
    ("snapshot_id", pa.string()), ("sku_id", pa.string()), ("dc_id", pa.string()), ("on_hand_qty", pa.int64()),
    ("on_order_qty", pa.int64()), ("safety_stock", pa.float64()), ("reorder_point", pa.float64()),
    ("inventory_ts", pa.timestamp("ms", tz="UTC")),
])
_REQUIRED = ("snapshot_id", "sku_id", "dc_id", "on_hand_qty", "safety_stock", "reorder_point")


def archive_holds_part(archive: ArchiveStore | None, collection: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether an archive file (committed, or staged by a verified batch) holds an hour that [start, end) touches."""
    return archive is not None and any(cold.hour_files(archive, collection, hour)
                                       for hour in hours_touching(start, end))


def order_totals(db: Database, archive: ArchiveStore | None, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Per pair: the order sums of [start, end) over both stores (``orders_hourly.SUMS_SCHEMA``)."""
    return pa.Table.from_pylist(orders_hourly.order_sums(db, archive, start, end), schema=orders_hourly.SUMS_SCHEMA)


def latest_inventory(db: Database, archive: ArchiveStore, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Per pair with ≥ 1 snapshot in [start, end), over both stores: the latest snapshot's on-hand, on-order, safety
    stock and reorder point (greatest ``inventory_ts``, then greatest ``snapshot_id``), ``snapshots`` and
    ``sum_on_hand`` (for the window's mean) — the columns of ``pushdown.latest_inventory``."""
    files = [path for hour in hours_touching(start, end) for path in cold.hour_files(archive, INVENTORY.collection, hour)]
    archived = cold.read_files(archive, files, _SNAPSHOT.names, _SNAPSHOT)
    archived = archived.filter(_in_window(archived, start, end))
    for name in _REQUIRED:
        archived = archived.filter(pc.is_valid(archived[name]))
    archived = _first_per_id(archived)
    hot = _hot_snapshots(db, start, end)
    hot = hot.filter(pc.invert(pc.is_in(hot["snapshot_id"], value_set=archived["snapshot_id"])))
    rows = pa.concat_tables([archived, hot])
    if rows.num_rows == 0:
        return _empty_result()
    ordered = rows.sort_by([("sku_id", "ascending"), ("dc_id", "ascending"), ("inventory_ts", "descending"),
                            ("snapshot_id", "descending")])
    latest = ordered.group_by(["sku_id", "dc_id"], use_threads=False).aggregate(
        [(name, "first") for name in ("on_hand_qty", "on_order_qty", "safety_stock", "reorder_point")]
        + [("snapshot_id", "count"), ("on_hand_qty", "sum")])
    return pa.table({
        "sku_id": latest["sku_id"], "dc_id": latest["dc_id"],
        "on_hand_qty": latest["on_hand_qty_first"], "on_order_qty": latest["on_order_qty_first"],
        "safety_stock": latest["safety_stock_first"], "reorder_point": latest["reorder_point_first"],
        "snapshots": latest["snapshot_id_count"], "sum_on_hand": latest["on_hand_qty_sum"],
    })


def _hot_snapshots(db: Database, start: dt.datetime, end: dt.datetime) -> pa.Table:
    match = {"inventory_ts": {"$gte": start, "$lt": end}, **INVENTORY.type_filter(*_REQUIRED)}
    # on_order_qty as it is, as the pushdown reads it (a malformed value becomes null, the pair stays)
    project = {"_id": 0, **{name: 1 for name in _SNAPSHOT.names},
               "on_order_qty": {"$convert": {"input": "$on_order_qty", "to": "long", "onError": None,
                                             "onNull": None}}}
    table = aggregate_arrow_all(db[INVENTORY.collection], [{"$match": match}, {"$project": project}],
                                schema=Schema(dict(zip(_SNAPSHOT.names, _SNAPSHOT.types))))
    return table.select(_SNAPSHOT.names).cast(_SNAPSHOT)


def _in_window(table: pa.Table, start: dt.datetime, end: dt.datetime):
    kind = table.schema.field("inventory_ts").type
    return pc.and_(pc.greater_equal(table["inventory_ts"], pa.scalar(start, kind)),
                   pc.less(table["inventory_ts"], pa.scalar(end, kind)))


def _first_per_id(table: pa.Table) -> pa.Table:
    """One row per snapshot_id (several files of one hour may hold the same snapshot: a re-run, a hand-over)."""
    if table.num_rows == 0:
        return table
    others = [name for name in _SNAPSHOT.names if name != "snapshot_id"]
    deduped = table.group_by("snapshot_id", use_threads=False).aggregate([(name, "first") for name in others])
    return deduped.rename_columns(["snapshot_id", *others]).select(_SNAPSHOT.names).cast(_SNAPSHOT)


def _empty_result() -> pa.Table:
    return pa.schema([("sku_id", pa.string()), ("dc_id", pa.string()), ("on_hand_qty", pa.int64()),
                      ("on_order_qty", pa.int64()), ("safety_stock", pa.float64()), ("reorder_point", pa.float64()),
                      ("snapshots", pa.int64()), ("sum_on_hand", pa.int64())]).empty_table()
