"""Archive paths (SPEC §8), identical on ``file://`` and ``hdfs://``; all relative to the archive root.

    <root>/<collection>/event_date=YYYY-MM-DD/hour=HH/part-<batch_id>-e<epoch>-<spark part>.parquet   committed
    <root>/_manifests/<batch_id>.<N>.e<epoch>.json                    manifest versions (manifest_store.py)
    <root>/_staging/<batch_id>/e<epoch>/<collection>/event_date=…/hour=…/part-*.parquet
        one attempt's files (the attempt = the lease epoch of its writer) until the commit moves them into the hour
        folders; read only through a verified manifest that lists them
    <root>/_staging/<batch_id>/e<epoch>/_input/<collection>/slice-N.parquet   the selected documents, for Spark

Every name an attempt writes carries its epoch, so two attempts of one batch never write the same file.
"""

from __future__ import annotations

import datetime as dt
import re

MANIFEST_DIR = "_manifests"
STAGING_DIR = "_staging"
_BATCH_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


def partition_dir(hour: dt.datetime) -> str:
    hour = hour.astimezone(dt.UTC)
    return f"event_date={hour:%Y-%m-%d}/hour={hour:%H}"


def hour_dir(collection: str, hour: dt.datetime) -> str:
    return f"{collection}/{partition_dir(hour)}"


def part_prefix(batch_id: str) -> str:
    return f"part-{batch_id}-"


def attempt_part_file(collection: str, partition: str, batch_id: str, epoch: int, spark_name: str) -> str:
    """The final name of one of Spark's staged files: a function of the staged file alone (Spark's names are unique
    within its job), so the mapping stays known after part of a commit moved some files."""
    return f"{collection}/{partition}/{part_prefix(batch_id)}e{epoch}-{spark_name.removeprefix('part-')}"


def attempt_part_prefix(batch_id: str, epoch: int) -> str:
    return f"{part_prefix(batch_id)}e{epoch}-"


def manifest_file(batch_id: str) -> str:
    return f"{MANIFEST_DIR}/{batch_id}.json"


def staging_dir(batch_id: str, collection: str | None = None) -> str:
    base = f"{STAGING_DIR}/{batch_id}"
    return f"{base}/{collection}" if collection else base


def attempt_dir(batch_id: str, epoch: int, collection: str | None = None) -> str:
    base = f"{staging_dir(batch_id)}/e{epoch}"
    return f"{base}/{collection}" if collection else base


def staging_input(batch_id: str, collection: str, epoch: int = 0) -> str:
    return f"{attempt_dir(batch_id, epoch)}/_input/{collection}"


def new_batch_id(now: dt.datetime, token: str) -> str:
    """Sortable by creation time; ``token`` (8 hex) keeps two batches of the same second apart."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S}Z-{token}"


def is_batch_id(text: str) -> bool:
    return bool(_BATCH_ID.match(text))


def partition_key(hour: dt.datetime) -> str:
    """Dagster HourlyPartitionsDefinition key of an hour."""
    return f"{hour.astimezone(dt.UTC):%Y-%m-%d-%H}:00"


def hour_of_partition_key(key: str) -> dt.datetime:
    return dt.datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.UTC)
