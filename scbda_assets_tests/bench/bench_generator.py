"""Generator → MongoDB sustained events/s against a raw `insert_many` of the same, pre-built documents.

Both write to the same server in the same run, into collections with the same indexes (the generator's:
unique business id, event time, compound (sku, dc, event time)), unordered. The generator figure includes the
simulation, building the documents, the writes and the guarded state update; the raw figure is BSON encoding +
server time only. Target: generator ≥ 0.6 × raw. Median of REPEATS runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import time

import pymongo

from scbda_assets.contract import FACT_COLLECTIONS
from scbda_assets.generator import store, stream

RATE = 1500.0
MINUTES = 40
REPEATS = 5
END = dt.datetime(2026, 5, 5, 12, 0, tzinfo=dt.UTC)  # a weekday afternoon in Karachi (above-average demand)


def _generator_run(client, settings, db_name: str) -> tuple[float, int, float]:
    client.drop_database(db_name)
    db = client[db_name]
    config = dataclasses.replace(settings, mongo_db=db_name)
    store.ensure_indexes(db)
    started = time.perf_counter()
    result = stream.advance(db, config, end=END, start_if_new=END - dt.timedelta(minutes=MINUTES), rate=RATE, seed=1)
    seconds = time.perf_counter() - started
    return result.events / seconds, result.events, seconds


def _raw_run(client, source_db: str, db_name: str, *, indexes: bool = True) -> tuple[float, int]:
    # Pre-built plain documents (naive UTC datetimes: the cheapest BSON encoding), so the baseline is the fastest
    # insert_many can be, not slowed by the reader's tz-aware datetimes.
    plain = pymongo.MongoClient(client.address[0], client.address[1], tz_aware=False)
    try:
        docs = {name: list(plain[source_db][name].find({}, {"_id": 0})) for name in FACT_COLLECTIONS}
    finally:
        plain.close()
    client.drop_database(db_name)
    db = client[db_name]
    if indexes:
        store.ensure_indexes(db)
    batch = stream.BATCH_EVENTS
    total = sum(len(d) for d in docs.values())
    started = time.perf_counter()
    for name, items in docs.items():
        for i in range(0, len(items), batch):
            db[name].insert_many(items[i:i + batch], ordered=False)
    return total / (time.perf_counter() - started), total


def run(ctx) -> list[dict]:
    settings = ctx["settings"]
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    gen, raw, bare = [], [], []
    try:
        # Interleaved, so a busy neighbour on the machine slows both sides alike.
        for i in range(REPEATS):
            rate, events, seconds = _generator_run(client, settings, "bench_generator")
            gen.append(rate)
            raw.append(_raw_run(client, "bench_generator", "bench_generator_raw")[0])
            bare.append(_raw_run(client, "bench_generator", "bench_generator_raw", indexes=False)[0])
            print(f"  run {i + 1}: generator {rate:,.0f} ev/s ({events} in {seconds:.2f}s), "
                  f"raw {raw[-1]:,.0f} docs/s, raw without indexes {bare[-1]:,.0f} docs/s")
    finally:
        client.drop_database("bench_generator")
        client.drop_database("bench_generator_raw")
        client.close()
    g, r = statistics.median(gen), statistics.median(raw)
    note = f"{MINUTES} simulated minutes at {RATE:g} events/min, median of {REPEATS}, same server and indexes"
    return [
        {"benchmark": "generator", "metric": "generator_events_per_s", "value": round(g), "unit": "events/s",
         "target": "", "note": note},
        {"benchmark": "generator", "metric": "raw_insert_many_docs_per_s", "value": round(r), "unit": "docs/s",
         "target": "", "note": "pre-built documents of the same run, unordered insert_many"},
        {"benchmark": "generator", "metric": "raw_insert_many_no_index_docs_per_s", "value": round(statistics.median(bare)),
         "unit": "docs/s", "target": "", "note": "same documents, collections without secondary indexes"},
        {"benchmark": "generator", "metric": "generator_vs_raw", "value": round(g / r, 2), "unit": "ratio",
         "target": ">= 0.6", "note": ""},
    ]
