"""The one contract every part of SCBDA reads (no Dagster, no driver, no Arrow: plain data).

- ``collections``: the fact collections — fields, BSON types, business ids, event-time fields. The quality
  ``$jsonSchema``, the KPI type filters and the archive schema are all derived from these specs.
- ``kpis``: KPI names and the headline figures of a run.
- ``keys``: the Redis keys the pipeline writes and the dashboard reads.
- ``stages``: the run tag that says which stage a Dagster run belongs to.
"""

from scbda_assets.contract.collections import (
    FACT_COLLECTIONS,
    INVENTORY,
    NUMBER_TYPES,
    ORDERS,
    SHIPMENTS,
    SPECS,
    SPECS_BY_ASSET,
    SPECS_BY_COLLECTION,
    CollectionSpec,
    Field,
)
from scbda_assets.contract.keys import (
    ARCHIVE_STATUS_KEY,
    DAILY_HISTORY_KEY,
    HISTORY_STREAM,
    LAST_UPDATE_KEY,
    kpi_key,
)
from scbda_assets.contract.kpis import HEADLINE_FIELDS, HEADLINE_OF, KPI_NAMES
from scbda_assets.contract.stages import STAGE_TAG, stage_tags

__all__ = [
    "ARCHIVE_STATUS_KEY", "DAILY_HISTORY_KEY", "FACT_COLLECTIONS", "HEADLINE_FIELDS", "HEADLINE_OF", "HISTORY_STREAM",
    "INVENTORY", "KPI_NAMES", "LAST_UPDATE_KEY", "NUMBER_TYPES", "ORDERS", "SHIPMENTS", "SPECS",
    "SPECS_BY_ASSET", "SPECS_BY_COLLECTION", "STAGE_TAG", "CollectionSpec", "Field", "kpi_key", "stage_tags",
]
