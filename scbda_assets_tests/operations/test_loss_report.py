"""The soak's loss report on purpose-built stores: ids counted in MongoDB and in the archive, overlaps, duplicates
and losses named per collection."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scbda_assets.soak import loss_report


def test_loss_report_counts_each_place_and_names_what_is_wrong(settings, mongo_db):
    mongo_db.orders_fact.insert_many([{"order_id": f"O-{i}"} for i in range(5)] + [{"no_id": True}])
    hour = Path(settings.archive_uri.removeprefix("file://")) / "orders_fact/event_date=2026-11-20/hour=08"
    hour.mkdir(parents=True)
    # O-4 is in both stores; O-7 was archived twice.
    pq.write_table(pa.table({"order_id": ["O-4", "O-5", "O-6", "O-7", "O-7"]}), hour / "part-a.parquet")
    report = loss_report(settings, {"orders_fact": 9, "shipments_fact": 0, "inventory_fact": 0})
    assert report["orders_fact"] == {"generated": 9, "in_mongodb": 5, "in_archive": 4, "duplicated_in_archive": 1,
                                     "in_both": 1, "lost": 1}
    assert report["shipments_fact"] == {"generated": 0, "in_mongodb": 0, "in_archive": 0,
                                        "duplicated_in_archive": 0, "in_both": 0, "lost": 0}
