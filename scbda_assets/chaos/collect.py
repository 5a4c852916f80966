"""Reading what the invariants need from the stores: ids and stock movements from MongoDB ∪ the archive's Parquet
files (and the generator's pending late events), the generator state, the live KPI keys, the archive's batches.

Reads only; an unreadable archive file is skipped and reported (``Cold.unreadable``), never a reason to stop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pymongo.database import Database
from pymongoarrow.api import Schema, find_arrow_all

from scbda_assets.chaos.invariants import Movements, Observation
from scbda_assets.contract import SPECS
from scbda_assets.contract.keys import kpi_key
from scbda_assets.contract.kpis import KPI_NAMES
from scbda_assets.generator.store import PENDING_COLLECTION, STATE_COLLECTION, STATE_ID

ID_FIELDS = {spec.collection: spec.id_field for spec in SPECS}
TS = pa.timestamp("ms", tz="UTC")
# The columns the stock balance reads, per fact collection.
MOVEMENT_COLUMNS = {
    "orders_fact": {"order_id": pa.string(), "sku_id": pa.string(), "dc_id": pa.string(), "order_ts": TS,
                    "fulfilled_qty": pa.int64()},
    "shipments_fact": {"shipment_id": pa.string(), "sku_id": pa.string(), "dc_id": pa.string(),
                       "actual_arrival_ts": TS, "quantity": pa.int64(), "status": pa.string(),
                       "shipment_ts": TS},
    "inventory_fact": {"snapshot_id": pa.string(), "sku_id": pa.string(), "dc_id": pa.string(), "inventory_ts": TS,
                       "on_hand_qty": pa.int64()},
}


@dataclasses.dataclass
class Cold:
    tables: dict[str, pa.Table]  # per fact collection: MOVEMENT_COLUMNS of every readable archive file
    unreadable: list[str]  # archive files that could not be read (e.g. a corrupt Parquet file)


def archive_root(archive_uri: str) -> Path:
    return Path(archive_uri.removeprefix("file://"))


def read_cold(archive_uri: str) -> Cold:
    """Every Parquet file in the hour folders (what a reader of the archive sees), file by file."""
    root, tables, unreadable = archive_root(archive_uri), {}, []
    for collection, columns in MOVEMENT_COLUMNS.items():
        schema = pa.schema(columns)
        parts = []
        for path in sorted((root / collection).rglob("*.parquet")) if (root / collection).exists() else []:
            try:
                table = pq.read_table(path, columns=list(columns), partitioning=None)
                parts.append(table.cast(schema))
            except (OSError, pa.ArrowException) as exc:
                unreadable.append(f"{path.relative_to(root)}: {type(exc).__name__}")
        tables[collection] = pa.concat_tables(parts) if parts else schema.empty_table()
    return Cold(tables, unreadable)


def read_hot(db: Database) -> dict[str, pa.Table]:
    return {collection: find_arrow_all(db[collection], {}, schema=Schema(columns),
                                       projection={name: 1 for name in columns} | {"_id": 0})
            for collection, columns in MOVEMENT_COLUMNS.items()}


def read_pending(db: Database) -> dict[str, pa.Table]:
    """The generator's late events not yet written: events of the committed state all the same (stock moved)."""
    rows: dict[str, list[dict]] = {collection: [] for collection in MOVEMENT_COLUMNS}
    for entry in db[PENDING_COLLECTION].find({}, {"collection": 1, "doc": 1}):
        if entry.get("collection") in rows:
            doc = entry["doc"]
            rows[entry["collection"]].append({name: doc.get(name) for name in MOVEMENT_COLUMNS[entry["collection"]]})
    return {collection: pa.Table.from_pylist(docs, schema=pa.schema(MOVEMENT_COLUMNS[collection]))
            for collection, docs in rows.items()}


@dataclasses.dataclass
class GeneratorState:
    as_of: dt.datetime | None
    po_ids: list[str]  # purchase orders in transit


def read_state(db: Database) -> GeneratorState:
    doc = db[STATE_COLLECTION].find_one({"_id": STATE_ID}, {"as_of": 1, "purchase_orders.shipment_id": 1}) or {}
    as_of = doc.get("as_of")
    return GeneratorState(as_of.replace(tzinfo=dt.UTC) if as_of else None,
                          [str(o["shipment_id"]) for o in doc.get("purchase_orders", [])])


def unique_by_id(tables: list[pa.Table], id_field: str) -> pa.Table:
    """One row per business id (the first: the stock balance counts an event once, wherever it is stored)."""
    table = pa.concat_tables(tables)
    numbered = pa.table({id_field: table[id_field], "row": pa.array(np.arange(table.num_rows))})
    first = numbered.group_by(id_field, use_threads=False).aggregate([("row", "min")])["row_min"]
    return table.take(first)


def in_transit_ids(shipments: pa.Table, before: dt.datetime) -> list[str]:
    """Shipments stored as in transit and created before the state's as-of (later ones are an uncommitted batch)."""
    mask = pc.and_(pc.equal(shipments["status"], "in_transit"), pc.less(shipments["shipment_ts"], before))
    return shipments.filter(mask)["shipment_id"].to_pylist()


def movements(orders: pa.Table, shipments: pa.Table, snapshots: pa.Table, before: dt.datetime) -> Movements:
    """The balance's inputs: snapshots before the state's as-of, fulfilled units, received units."""
    snapshots = snapshots.filter(pc.less(snapshots["inventory_ts"], before))
    received = shipments.filter(pc.invert(pc.is_null(shipments["actual_arrival_ts"])))

    # One integer per (sku, dc) across the three tables: grouping by it is a numeric sort.
    keys = pa.chunked_array([pc.binary_join_element_wise(t["sku_id"], t["dc_id"], "|")
                             for t in (snapshots, orders, received)], pa.string())
    codes = pc.dictionary_encode(keys).combine_chunks()
    names = codes.dictionary.to_numpy(zero_copy_only=False)
    indices = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    cuts = np.cumsum([snapshots.num_rows, orders.num_rows])
    snap_code, out_code, in_code = np.split(indices, cuts)

    def ms(column):
        return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)

    return Movements(
        snap_pair=snap_code, snap_ts=ms(snapshots["inventory_ts"]),
        snap_on_hand=snapshots["on_hand_qty"].to_numpy(zero_copy_only=False),
        out_pair=out_code, out_ts=ms(orders["order_ts"]),
        out_qty=orders["fulfilled_qty"].to_numpy(zero_copy_only=False),
        in_pair=in_code, in_ts=ms(received["actual_arrival_ts"]),
        in_qty=received["quantity"].to_numpy(zero_copy_only=False), pair_names=names,
    )


def observe_live(redis_client, key_prefix: str, now: dt.datetime) -> list[Observation]:
    """One read of every live ``kpi:<name>`` key's as-of (one round trip)."""
    import json

    keys = [key_prefix + kpi_key(name) for name in KPI_NAMES]
    values = redis_client.mget(keys)
    at = now.isoformat(timespec="milliseconds")
    return [Observation(at, key, json.loads(value).get("as_of") if value else None) for key, value in zip(keys, values)]


DEMAND_COLUMNS = {"order_id": pa.string(), "sku_id": pa.string(), "dc_id": pa.string(), "order_ts": TS,
                  "requested_qty": pa.int64()}


def read_demand_hot(db: Database) -> pa.Table:
    return find_arrow_all(db["orders_fact"], {}, schema=Schema(DEMAND_COLUMNS),
                          projection={name: 1 for name in DEMAND_COLUMNS} | {"_id": 0}).drop_null()


def read_demand_cold(archive_uri: str) -> pa.Table:
    return _cold_files("orders_fact", archive_uri, DEMAND_COLUMNS).drop_null()


def _cold_files(collection: str, archive_uri: str, columns: dict[str, pa.DataType], filter_=None) -> pa.Table:
    root = archive_root(archive_uri) / collection
    schema, parts = pa.schema(columns), []
    for path in sorted(root.rglob("*.parquet")) if root.exists() else []:
        try:
            table = pq.read_table(path, columns=list(columns), partitioning=None, filters=filter_)
        except (OSError, pa.ArrowException):
            continue  # reported by read_cold
        parts.append(table.cast(schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def cold_documents(archive_uri: str, spec, field: str | None, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Archived well-formed documents (typed columns; ``raw_json`` rows are malformed and skipped, as the KPIs
    skip them) with ``field`` in [start, end), as the contract's fields."""
    from scbda_assets.archive.schema import ARROW_TYPES

    columns = {f.name: ARROW_TYPES[f.kind] for f in spec.fields} | {"raw_json": pa.string()}
    filter_ = [(field, ">=", start), (field, "<", end)] if field else None
    table = _cold_files(spec.collection, archive_uri, columns, filter_)
    table = table.filter(pc.is_null(table["raw_json"])).drop_columns(["raw_json"])
    return table.to_pylist()


def complete_batch_times(db: Database, archive_uri: str) -> list[dt.datetime]:
    """When each complete batch finished (its creation plus its duration)."""
    from scbda_assets.archive import manifest as mf
    from scbda_assets.archive.catalog import batches
    from scbda_assets.archive.storage import ArchiveStore
    from scbda_assets.timeutil import parse_iso

    return [parse_iso(b["created_at"]) + dt.timedelta(seconds=b.get("duration_s") or 0)
            for b in batches(db, ArchiveStore(archive_uri), status=mf.COMPLETE)]
