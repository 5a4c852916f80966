"""Redis keys (SPEC §10), before the deployment's optional prefix (``Settings.redis_key``)."""

from __future__ import annotations

LAST_UPDATE_KEY = "kpi:last_update"  # ISO 8601 completion time of the last KPI run
HISTORY_STREAM = "kpi:history"  # capped stream: one entry of headline figures per KPI run
DAILY_HISTORY_KEY = "history:daily"  # 30 days of per-region and per-supplier trends
ARCHIVE_STATUS_KEY = "archive:status"  # the archive's status as ``scbda archive --status`` shows it


def kpi_key(name: str) -> str:
    """``kpi:<name>``: one KPI's payload ``{"as_of", "data_until", "window_minutes", "rows", ...}``."""
    return f"kpi:{name}"
