"""The dashboard's data: one read of the Redis KPI snapshot (SPEC §10), decoded into DataFrames, plus the pure logic
on top of it — filters, headline numbers for the cards, freshness. No Streamlit import: tests call it directly.

One refresh = one pipelined round trip (the five KPI keys, ``kpi:last_update``, the newest ``kpi:history`` entries
and ``history:regional_daily``). Anything malformed in Redis is reported by key name and otherwise ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import threading

import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scbda_assets.settings import Settings

KPI_NAMES = ("inventory_level", "stockout_risk", "supplier_performance", "dc_utilization", "regional_fulfillment")
LAST_UPDATE_KEY = "kpi:last_update"
HISTORY_STREAM = "kpi:history"
REGIONAL_DAILY_KEY = "history:regional_daily"
STALE_AFTER_SECONDS = 90
HISTORY_ENTRIES = 1440  # a day of one-minute KPI runs: the whole stream
SEVERITY_ORDER = {"critical": 0, "warning": 1, "ok": 2}
UTILIZATION_HIGH = 0.85
UTILIZATION_CRITICAL = 0.90

# Row fields of each payload (SPEC §10): text columns, then numeric ones.
_TEXT = {
    "inventory_level": ("sku_id", "dc_id", "product_name", "category", "dc_name", "region_id"),
    "stockout_risk": ("sku_id", "dc_id", "product_name", "category", "dc_name", "region_id", "severity"),
    "supplier_performance": ("supplier_id", "supplier_name", "supplier_type"),
    "dc_utilization": ("dc_id", "dc_name", "region_id", "city", "status"),
    "regional_fulfillment": ("region_id", "region_name"),
    REGIONAL_DAILY_KEY: ("date", "region_id", "region_name"),
}
_NUMERIC = {
    "inventory_level": ("on_hand_qty", "avg_on_hand_qty", "safety_stock", "reorder_point"),
    "stockout_risk": ("on_hand_qty", "demand_per_day", "days_to_stockout"),
    "supplier_performance": ("reliability_score", "shipments_created", "avg_planned_lead_time_days",
                             "stddev_planned_lead_time_days", "shipments_received", "avg_actual_lead_time_days",
                             "on_time_rate"),
    "dc_utilization": ("latitude", "longitude", "volume_m3", "capacity_m3", "utilization"),
    "regional_fulfillment": ("orders", "units_requested", "units_fulfilled", "fill_rate", "revenue", "lost_revenue",
                             "avg_order_value"),
    REGIONAL_DAILY_KEY: ("orders", "revenue", "fill_rate"),
}
_BOOLEAN = {"inventory_level": ("below_safety_stock",), "dc_utilization": ("over_threshold",)}
HISTORY_FIELDS = ("total_on_hand", "stockout_alerts", "avg_on_time_rate", "avg_actual_lead_time_days",
                  "avg_utilization", "revenue", "fill_rate")


@dataclasses.dataclass(frozen=True)
class Payload:
    """One decoded JSON value: ``{"as_of", "window_minutes", "rows", ...}``."""

    as_of: dt.datetime | None
    window_minutes: float | None
    rows: pd.DataFrame
    alert_count: int | None = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    read_at: dt.datetime
    last_update: dt.datetime | None
    kpis: dict[str, Payload]
    history: pd.DataFrame  # one row per KPI run, oldest first; as_of + HISTORY_FIELDS
    regional_daily: Payload | None
    malformed: tuple[str, ...]  # keys whose value could not be decoded

    @property
    def empty(self) -> bool:
        """Nothing to show: no KPI key (never run yet, or every key expired) and no trend history."""
        return not self.kpis and self.history.empty and self.regional_daily is None


@dataclasses.dataclass(frozen=True)
class Filters:
    """Selected values; an empty selection means "all". Each applies to the tables that have its column."""

    regions: tuple[str, ...] = ()
    dcs: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()

    _COLUMNS = (("regions", "region_id"), ("dcs", "dc_id"), ("categories", "category"), ("skus", "sku_id"))

    def active(self) -> bool:
        return any(getattr(self, field) for field, _ in self._COLUMNS)

    def applies_to(self, frame: pd.DataFrame) -> list[str]:
        """The filter columns this frame is filtered by."""
        return [column for field, column in self._COLUMNS if getattr(self, field) and column in frame.columns]

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        for field, column in self._COLUMNS:
            selected = getattr(self, field)
            if selected and column in frame.columns:
                mask &= frame[column].isin(selected)
        return frame[mask]


# ---------------------------------------------------------------- reading


def redis_url(settings: Settings) -> str | None:
    """SCBDA_REDIS_URL, or the embedded redis-server when it runs (the dashboard never starts services)."""
    if settings.redis_url:
        return settings.redis_url
    from scbda_assets.services import resolve_endpoints

    return resolve_endpoints(settings).get("SCBDA_REDIS_URL")


def connect(url: str, timeout_s: float = 1.0) -> redis.Redis:
    """A client that fails fast while Redis is down and reconnects by itself on the next call when it is back."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 1), health_check_interval=30)


def snapshot_keys(settings: Settings) -> list[str]:
    """Every key one refresh reads, in pipeline order."""
    names = [f"kpi:{name}" for name in KPI_NAMES] + [LAST_UPDATE_KEY, REGIONAL_DAILY_KEY, HISTORY_STREAM]
    return [settings.redis_key(name) for name in names]


class HistoryCache:
    """The decoded ``kpi:history`` kept between refreshes, so a refresh reads only the entries added since the last
    one instead of a day of runs. If the newest entry we hold is gone (stream deleted, flushed or recreated), the
    next read starts over. Shared by the sessions of one server, hence the lock."""

    def __init__(self, limit: int = HISTORY_ENTRIES):
        self.limit = limit
        self.last_id: bytes | None = None
        self.frame = _history([])
        self.lock = threading.Lock()


def read_raw(client: redis.Redis, settings: Settings, history_entries: int = HISTORY_ENTRIES,
             since: bytes | None = None) -> list:
    """One round trip: GET the five KPI keys, last_update and the regional history, then the trend stream — the
    newest ``history_entries`` (XREVRANGE), or with ``since`` only the entries after it (plus a check that it still
    exists)."""
    *values, stream = snapshot_keys(settings)
    pipe = client.pipeline(transaction=False)
    for key in values:
        pipe.get(key)
    if since is None:
        pipe.xrevrange(stream, count=history_entries)
    else:
        pipe.xrange(stream, min=since, max=since)
        pipe.xrange(stream, min=b"(" + since, count=history_entries)
    return pipe.execute()


def read_snapshot(client: redis.Redis, settings: Settings, history_entries: int = HISTORY_ENTRIES,
                  now: dt.datetime | None = None, history: HistoryCache | None = None) -> Snapshot:
    if history is None:
        raw = read_raw(client, settings, history_entries)
        return decode_snapshot(raw, now or dt.datetime.now(dt.UTC))
    with history.lock:
        raw = read_raw(client, settings, history.limit, since=history.last_id)
        if history.last_id is not None:
            still_there, new_entries = raw[-2:]
            if not still_there:  # the stream was reset: read it whole
                raw = read_raw(client, settings, history.limit)
                history.frame, history.last_id = _history([]), None
            else:
                raw = [*raw[:-2], list(reversed(new_entries))]  # newest first, as XREVRANGE
        snapshot = decode_snapshot(raw, now or dt.datetime.now(dt.UTC))
        if raw[-1]:
            history.last_id = raw[-1][0][0]
            combined = pd.concat([history.frame, snapshot.history]) if len(history.frame) else snapshot.history
            history.frame = combined.tail(history.limit).reset_index(drop=True)
        elif history.last_id is None:
            history.frame = snapshot.history
        return dataclasses.replace(snapshot, history=history.frame)


def empty_snapshot(read_at: dt.datetime) -> Snapshot:
    """What a Redis without any SCBDA key reads as."""
    return decode_snapshot([None] * (len(KPI_NAMES) + 2) + [[]], read_at)


def decode_snapshot(raw: list, read_at: dt.datetime) -> Snapshot:
    kpi_values, (last_update_raw, regional_raw, stream) = raw[: len(KPI_NAMES)], raw[len(KPI_NAMES):]
    malformed: list[str] = []
    kpis: dict[str, Payload] = {}
    for name, value in zip(KPI_NAMES, kpi_values):
        if value is None:
            continue
        payload = _payload(name, value)
        if payload is None:
            malformed.append(f"kpi:{name}")
        else:
            kpis[name] = payload
    last_update = None
    if last_update_raw is not None:
        last_update = parse_time(_text(last_update_raw))
        if last_update is None:
            malformed.append(LAST_UPDATE_KEY)
    regional_daily = None
    if regional_raw is not None:
        regional_daily = _payload(REGIONAL_DAILY_KEY, regional_raw)
        if regional_daily is None:
            malformed.append(REGIONAL_DAILY_KEY)
    return Snapshot(read_at=read_at, last_update=last_update, kpis=kpis, history=_history(stream),
                    regional_daily=regional_daily, malformed=tuple(malformed))


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _payload(name: str, value) -> Payload | None:
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        return None
    rows = [row for row in document["rows"] if isinstance(row, dict)]
    alert_count = _number(document.get("alert_count"))
    return Payload(
        as_of=parse_time(document.get("as_of") if isinstance(document.get("as_of"), str) else None),
        window_minutes=_number(document.get("window_minutes")),
        rows=rows_frame(name, rows),
        alert_count=None if alert_count is None else int(alert_count),
    )


def rows_frame(name: str, rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly the contract's columns: text as str ("" when missing), numbers as float
    (NaN when missing or not a number), flags as bool. Unknown extra fields are dropped."""
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    out = pd.DataFrame(index=range(len(rows)))
    for column in _TEXT[name]:
        values = frame[column] if column in frame else pd.Series([None] * len(rows))
        out[column] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)) for v in values]
    for column in _NUMERIC[name]:
        values = frame[column] if column in frame else pd.Series([None] * len(rows))
        out[column] = pd.Series([_number(v) for v in values], dtype="float64")
    for column in _BOOLEAN.get(name, ()):
        values = frame[column] if column in frame else pd.Series([None] * len(rows))
        out[column] = [v is True for v in values]
    return out


def _history(stream) -> pd.DataFrame:
    records = []
    for _entry_id, fields in reversed(stream or []):  # XREVRANGE is newest first
        fields = {_text(k): _text(v) for k, v in fields.items()}
        as_of = parse_time(fields.get("as_of"))
        if as_of is None:
            continue
        records.append({"as_of": as_of, **{f: _number(fields.get(f) or None) for f in HISTORY_FIELDS}})
    frame = pd.DataFrame.from_records(records, columns=["as_of", *HISTORY_FIELDS])
    for field in HISTORY_FIELDS:
        frame[field] = frame[field].astype("float64")
    return frame.sort_values("as_of", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- logic over a snapshot


def rows(snapshot: Snapshot, name: str, filters: Filters = Filters()) -> pd.DataFrame | None:
    """The filtered rows of one KPI, or None when its key is missing (no data yet)."""
    payload = snapshot.kpis.get(name)
    return None if payload is None else filters.apply(payload.rows)


def age_seconds(snapshot: Snapshot, now: dt.datetime | None = None) -> float | None:
    if snapshot.last_update is None:
        return None
    return max(0.0, ((now or snapshot.read_at) - snapshot.last_update).total_seconds())


def is_stale(snapshot: Snapshot, now: dt.datetime | None = None) -> bool:
    """Older than STALE_AFTER_SECONDS, or KPI data without a completion time (a run that did not finish)."""
    age = age_seconds(snapshot, now)
    if age is None:
        return bool(snapshot.kpis)
    return age > STALE_AFTER_SECONDS


@dataclasses.dataclass(frozen=True)
class Headline:
    """The five KPI cards. None = no data for that card (shown as "—", never as zero)."""

    total_on_hand: float | None
    stockout_alerts: int | None
    avg_lead_time_days: float | None
    avg_planned_lead_time_days: float | None
    on_time_rate: float | None
    avg_utilization: float | None
    revenue: float | None
    fill_rate: float | None
    window_minutes: float | None


def headline(snapshot: Snapshot, filters: Filters = Filters()) -> Headline:
    inventory = rows(snapshot, "inventory_level", filters)
    risk = rows(snapshot, "stockout_risk", filters)
    suppliers = rows(snapshot, "supplier_performance", filters)
    dcs = rows(snapshot, "dc_utilization", filters)
    regions = rows(snapshot, "regional_fulfillment", filters)
    fulfillment = snapshot.kpis.get("regional_fulfillment")
    return Headline(
        total_on_hand=None if inventory is None else float(inventory["on_hand_qty"].sum()),
        stockout_alerts=None if risk is None else int(risk["severity"].isin(["critical", "warning"]).sum()),
        avg_lead_time_days=_weighted(suppliers, "avg_actual_lead_time_days", "shipments_received"),
        avg_planned_lead_time_days=_weighted(suppliers, "avg_planned_lead_time_days", "shipments_created"),
        on_time_rate=_weighted(suppliers, "on_time_rate", "shipments_received"),
        avg_utilization=None if dcs is None or dcs["utilization"].isna().all() else float(dcs["utilization"].mean()),
        revenue=None if regions is None else float(regions["revenue"].sum()),
        fill_rate=_ratio(regions, "units_fulfilled", "units_requested"),
        window_minutes=None if fulfillment is None else fulfillment.window_minutes,
    )


def _weighted(frame: pd.DataFrame | None, value: str, weight: str) -> float | None:
    """Average of a per-group mean weighted by the group's count (each shipment counts once)."""
    if frame is None:
        return None
    usable = frame[frame[value].notna() & (frame[weight] > 0)]
    total = usable[weight].sum()
    return None if total <= 0 else float((usable[value] * usable[weight]).sum() / total)


def _ratio(frame: pd.DataFrame | None, numerator: str, denominator: str) -> float | None:
    if frame is None:
        return None
    below = frame[denominator].sum()
    return None if below <= 0 else float(frame[numerator].sum() / below)


@dataclasses.dataclass(frozen=True)
class Options:
    """Filter choices found in the snapshot: id → display name."""

    regions: dict[str, str]
    dcs: dict[str, str]
    dc_region: dict[str, str]
    categories: list[str]
    skus: dict[str, str]
    sku_category: dict[str, str]


def filter_options(snapshot: Snapshot) -> Options:
    regions: dict[str, str] = {}
    dcs: dict[str, str] = {}
    dc_region: dict[str, str] = {}
    skus: dict[str, str] = {}
    sku_category: dict[str, str] = {}
    for name, payload in snapshot.kpis.items():
        frame = payload.rows
        for row in frame.to_dict("records"):
            if row.get("region_id"):
                regions.setdefault(row["region_id"], row.get("region_name") or row["region_id"])
                if row.get("region_name"):
                    regions[row["region_id"]] = row["region_name"]
            if row.get("dc_id"):
                dcs.setdefault(row["dc_id"], row.get("dc_name") or row["dc_id"])
                if row.get("region_id"):
                    dc_region[row["dc_id"]] = row["region_id"]
            if row.get("sku_id"):
                skus.setdefault(row["sku_id"], row.get("product_name") or row["sku_id"])
                if row.get("category"):
                    sku_category[row["sku_id"]] = row["category"]
    return Options(regions=dict(sorted(regions.items())), dcs=dict(sorted(dcs.items())), dc_region=dc_region,
                   categories=sorted(set(sku_category.values())), skus=dict(sorted(skus.items())),
                   sku_category=sku_category)


def stockout_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Most urgent first: critical, warning, ok (unknown severities last), then fewest days to stockout."""
    order = frame["severity"].map(SEVERITY_ORDER).fillna(len(SEVERITY_ORDER))
    return (frame.assign(_order=order)
            .sort_values(["_order", "days_to_stockout", "sku_id", "dc_id"], na_position="last", kind="stable")
            .drop(columns="_order").reset_index(drop=True))
