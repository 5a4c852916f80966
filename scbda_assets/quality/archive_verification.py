"""Archive verification (pure of Dagster): the recent complete batches of one collection are whole and final.

For each batch: its files exist, they hold exactly the manifest's ``record_count`` rows, no **business id** appears
twice in the archive (within the batch, or in two batches), and no archived business id is in MongoDB (the delete
step finished, and no writer re-inserted it). Also a problem: any batch whose recovery failed or is parked. Business ids, not ``_id``: a re-inserted document gets a new ``_id``,
so only the business id shows the same event in both stores (SPEC §8.9). Reads only the id columns.
"""

from __future__ import annotations

import pyarrow.dataset as ds
from pymongo.database import Database

from scbda_assets.archive import catalog, stuck
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import SPECS_BY_COLLECTION

_CHUNK = 5000


def read_business_ids(store: ArchiveStore, files: list[str], id_field: str) -> list:
    if not files:
        return []
    dataset = ds.dataset([store.path(path) for path in files], filesystem=store.fs, format="parquet")
    return dataset.to_table(columns=[id_field])[id_field].to_pylist()


def verify_recent_batches(store: ArchiveStore, db: Database, collection: str, limit: int = 20) -> dict:
    id_field = SPECS_BY_COLLECTION[collection].id_field
    batches = catalog.recent_complete_manifests(db, store, collection, limit)
    problems: list[str] = []
    seen: set = set()
    records = 0
    for batch in batches:
        entry, batch_id = batch["collections"][collection], batch["batch_id"]
        missing = [path for path in entry["files"] if not store.exists(path)]
        if missing:
            problems.append(f"{batch_id}: {len(missing)} file(s) missing, e.g. {missing[0]}")
            continue
        ids = read_business_ids(store, entry["files"], id_field)
        records += len(ids)
        if len(ids) != entry["record_count"]:
            problems.append(f"{batch_id}: {len(ids)} rows in files, manifest says {entry['record_count']}")
        present = [i for i in ids if i is not None]  # a malformed document may lack its business id
        unique = set(present)
        repeated = (len(present) - len(unique)) + len(seen & unique)  # within this batch, and across batches
        if repeated:
            problems.append(f"{batch_id}: {repeated} business id(s) archived twice")
        seen |= unique
        listed = sorted(unique, key=str)
        still_hot = sum(
            db[collection].count_documents({id_field: {"$in": listed[k : k + _CHUNK]}})
            for k in range(0, len(listed), _CHUNK)
        )
        if still_hot:
            problems.append(f"{batch_id}: {still_hot} archived business id(s) also in MongoDB")
    for batch in stuck.problems(db, store):  # a batch recovery could not finish is a problem until it completes
        state = "parked" if batch["parked"] else f"recovery failed {batch['failures']} time(s)"
        problems.append(f"{batch['batch_id']}: incomplete, {state}: {batch['last_error']}")
    return {"batches": len(batches), "records": records, "problems": problems}
