"""Archive verification (pure of Dagster): the recent complete batches of one collection are whole and final.

For each batch: its files exist, they hold exactly the manifest's ``record_count`` rows, no id appears in two
batches, and no archived id is still in MongoDB (the delete step finished). Reads only the ``_id`` column.
"""

from __future__ import annotations

from pymongo.database import Database

from scbda_assets.archive import manifest as mf
from scbda_assets.archive.protocol import list_manifests, read_ids
from scbda_assets.archive.selection import decode_id
from scbda_assets.archive.storage import ArchiveStore

_CHUNK = 5000


def verify_recent_batches(store: ArchiveStore, db: Database, collection: str, limit: int = 20) -> dict:
    batches = sorted(
        (m for m in list_manifests(store) if m["status"] == mf.COMPLETE and m["collections"].get(collection)),
        key=lambda m: m["created_at"],
    )[-limit:]
    problems: list[str] = []
    seen: set[str] = set()
    records = 0
    for batch in batches:
        entry, batch_id = batch["collections"][collection], batch["batch_id"]
        missing = [path for path in entry["files"] if not store.exists(path)]
        if missing:
            problems.append(f"{batch_id}: {len(missing)} file(s) missing, e.g. {missing[0]}")
            continue
        ids = read_ids(store, entry["files"]).to_pylist()
        records += len(ids)
        if len(ids) != entry["record_count"]:
            problems.append(f"{batch_id}: {len(ids)} rows in files, manifest says {entry['record_count']}")
        unique = set(ids)
        repeated = (len(ids) - len(unique)) + len(seen & unique)  # within this batch, and across batches
        if repeated:
            problems.append(f"{batch_id}: {repeated} id(s) archived twice")
        seen |= unique
        still_hot = sum(
            db[collection].count_documents({"_id": {"$in": [decode_id(i) for i in ids[k : k + _CHUNK]]}})
            for k in range(0, len(ids), _CHUNK)
        )
        if still_hot:
            problems.append(f"{batch_id}: {still_hot} archived id(s) still in MongoDB")
    return {"batches": len(batches), "records": records, "problems": problems}
