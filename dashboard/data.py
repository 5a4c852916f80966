"""The dashboard's data: one read of the Redis KPI snapshot (SPEC §10), decoded into DataFrames, plus the pure logic
on top of it — filters, headline numbers for the cards, freshness. No Streamlit import: tests call it directly.

One refresh = one pipelined round trip (the five KPI keys, ``kpi:last_update``, ``history:daily``,
``archive:status`` and the new ``kpi:history`` entries). Anything malformed in Redis is reported by key name and otherwise ignored.
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

from scbda_assets.contract import (
    ARCHIVE_STATUS_KEY,
    DAILY_HISTORY_KEY,
    HEADLINE_FIELDS,
    HISTORY_STREAM,
    KPI_NAMES,
    LAST_UPDATE_KEY,
    kpi_key,
)
from scbda_assets.domain.reference import RULES
from scbda_assets.settings import Settings
from scbda_assets.timeutil import parse_iso

# Staleness is measured from data_until (SPEC §10), which trails the tick by up to a generator minute plus the run:
# three missed minute runs make the page stale.
STALE_AFTER_SECONDS = 180
HISTORY_ENTRIES = 1440  # a day of one-minute KPI runs: the whole stream
SEVERITY_ORDER = {"critical": 0, "warning": 1, "ok": 2}
UTILIZATION_HIGH = RULES.utilization_high
UTILIZATION_CRITICAL = RULES.utilization_critical
DAILY_REGIONS = "history:daily/regions"
DAILY_SUPPLIERS = "history:daily/suppliers"

# Row fields of each payload (SPEC §9/§10): text columns, then numeric ones, then flags. Anything else is dropped.
_TEXT = {
    "inventory_level": ("sku_id", "dc_id", "product_name", "category", "dc_name", "region_id"),
    "stockout_risk": ("sku_id", "dc_id", "product_name", "category", "dc_name", "region_id", "severity",
                      "projected_stockout_ts", "next_receipt_ts"),
    "supplier_performance": ("supplier_id", "supplier_name"),
    "dc_utilization": ("dc_id", "dc_name", "status", "region_id", "city"),
    "regional_fulfillment": ("region_id", "region_name"),
    DAILY_REGIONS: ("date", "region_id", "region_name"),
    DAILY_SUPPLIERS: ("date", "supplier_id", "supplier_name"),
}
_NUMERIC = {
    "inventory_level": ("on_hand_qty", "avg_on_hand_qty", "safety_stock", "reorder_point", "days_of_cover"),
    "stockout_risk": ("on_hand_qty", "on_order_qty", "demand_per_day", "demand_stddev_per_day",
                      "live_demand_per_day", "history_days", "days_to_stockout", "horizon_days",
                      "stockout_probability"),
    "supplier_performance": ("shipments_created", "avg_planned_lead_time_days", "stddev_planned_lead_time_days",
                             "shipments_received", "avg_actual_lead_time_days", "stddev_actual_lead_time_days",
                             "on_time_rate", "avg_delay_days", "in_transit", "overdue", "created_30m",
                             "received_30m"),
    "dc_utilization": ("volume_m3", "capacity_m3", "utilization", "inbound_m3", "projected_utilization",
                       "latitude", "longitude"),
    "regional_fulfillment": ("orders", "units_requested", "units_fulfilled", "fill_rate", "revenue", "lost_revenue",
                             "avg_order_value", "orders_in_full", "order_fill_rate"),
    DAILY_REGIONS: ("orders", "units_requested", "units_fulfilled", "fill_rate", "revenue", "lost_revenue",
                    "avg_order_value", "orders_in_full", "order_fill_rate"),
    DAILY_SUPPLIERS: ("shipments_received", "on_time_rate", "avg_actual_lead_time_days"),
}
_BOOLEAN = {"inventory_level": ("below_safety_stock",), "dc_utilization": ("over_threshold",),
            "stockout_risk": ("stockout_before_receipt",)}
HISTORY_FIELDS = HEADLINE_FIELDS  # one entry of the kpi:history stream


@dataclasses.dataclass(frozen=True)
class Payload:
    """One decoded KPI value: ``{"as_of", "data_until", "window_minutes", "rows", ...}``."""

    as_of: dt.datetime | None
    window_minutes: float | None
    rows: pd.DataFrame
    alert_count: int | None = None
    data_until: dt.datetime | None = None
    history_days: float | None = None


@dataclasses.dataclass(frozen=True)
class DailyHistory:
    """``history:daily``: per region and UTC day the KPI 5 fields, per supplier and day receipts and on-time rate."""

    as_of: dt.datetime | None
    regions: pd.DataFrame
    suppliers: pd.DataFrame


@dataclasses.dataclass(frozen=True)
class ArchiveStatus:
    """``archive:status`` as ``scbda_assets.archive.status`` writes it (SPEC §8); each part empty when missing.
    Sizes are the BSON bytes moved out of MongoDB (``source_bytes``), the figure MB/s is measured on."""

    collections: pd.DataFrame  # collection, documents, bytes, oldest_event, newest_event
    last_runs: pd.DataFrame  # started_at, seconds, documents, bytes, mb_per_s
    incomplete_batches: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    read_at: dt.datetime
    last_update: dt.datetime | None
    kpis: dict[str, Payload]
    history: pd.DataFrame  # one row per KPI run, oldest first; as_of + HISTORY_FIELDS
    daily: DailyHistory | None
    malformed: tuple[str, ...]  # keys whose value could not be decoded
    archive: ArchiveStatus | None = None

    @property
    def empty(self) -> bool:
        """Nothing to show: no KPI key (never run yet, or every key expired) and no trend history."""
        return not self.kpis and self.history.empty and self.daily is None

    @property
    def data_until(self) -> dt.datetime | None:
        """The newest minute the KPIs cover (staleness is measured from it, SPEC §10)."""
        times = [p.data_until or p.as_of for p in self.kpis.values() if (p.data_until or p.as_of) is not None]
        return max(times) if times else None


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
    from scbda_assets.clients import settings_redis_url

    return settings_redis_url(settings)


def connect(url: str, timeout_s: float = 1.0) -> redis.Redis:
    """A client that fails fast while Redis is down and reconnects by itself on the next call when it is back."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 1), health_check_interval=30)


def snapshot_keys(settings: Settings) -> list[str]:
    """Every key one refresh reads, in pipeline order."""
    names = [kpi_key(name) for name in KPI_NAMES] + [LAST_UPDATE_KEY, DAILY_HISTORY_KEY, ARCHIVE_STATUS_KEY,
                                                     HISTORY_STREAM]
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
    """One round trip: GET the five KPI keys, last_update, the daily history and the archive status, then the trend
    stream — the
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
    return decode_snapshot([None] * (len(KPI_NAMES) + 3) + [[]], read_at)


def decode_snapshot(raw: list, read_at: dt.datetime) -> Snapshot:
    kpi_values = raw[: len(KPI_NAMES)]
    last_update_raw, daily_raw, archive_raw, stream = raw[len(KPI_NAMES):]
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
    if "dc_utilization" in kpis:
        kpis["dc_utilization"] = dataclasses.replace(kpis["dc_utilization"],
                                                     rows=with_dc_geography(kpis["dc_utilization"].rows))
    last_update = None
    if last_update_raw is not None:
        last_update = parse_time(_text(last_update_raw))
        if last_update is None:
            malformed.append(LAST_UPDATE_KEY)
    daily = None
    if daily_raw is not None:
        daily = _daily(daily_raw)
        if daily is None:
            malformed.append(DAILY_HISTORY_KEY)
    archive = None
    if archive_raw is not None:
        archive = _archive(archive_raw)
        if archive is None:
            malformed.append(ARCHIVE_STATUS_KEY)
    return Snapshot(read_at=read_at, last_update=last_update, kpis=kpis, history=_history(stream), daily=daily,
                    malformed=tuple(malformed), archive=archive)


def with_dc_geography(frame: pd.DataFrame) -> pd.DataFrame:
    """Region, city and coordinates of each DC from the reference data (the map and the region filter need them;
    the KPI rows do not carry them). Values already in the rows win."""
    from scbda_assets.domain.reference import DCS

    reference = {dc.dc_id: dc for dc in DCS}
    out = frame.copy()
    for column, attribute in (("region_id", "region_id"), ("city", "city"), ("latitude", "latitude"),
                              ("longitude", "longitude")):
        known = out["dc_id"].map(lambda dc_id: getattr(reference[dc_id], attribute) if dc_id in reference else None)
        if out[column].dtype == object:
            out[column] = [v if v else (k or "") for v, k in zip(out[column], known)]
        else:
            out[column] = out[column].fillna(pd.to_numeric(known, errors="coerce"))
    return out


def _json(value):
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError, TypeError):
        return None


def _daily(value) -> DailyHistory | None:
    document = _json(value)
    if not isinstance(document, dict):
        return None
    regions = document.get("regions")
    suppliers = document.get("suppliers")
    if not isinstance(regions, list) and not isinstance(suppliers, list):
        return None
    as_of = document.get("as_of")
    return DailyHistory(
        as_of=parse_time(as_of if isinstance(as_of, str) else None),
        regions=rows_frame(DAILY_REGIONS, [r for r in regions or [] if isinstance(r, dict)]),
        suppliers=rows_frame(DAILY_SUPPLIERS, [r for r in suppliers or [] if isinstance(r, dict)]),
    )


def _archive(value) -> ArchiveStatus | None:
    document = _json(value)
    if not isinstance(document, dict):
        return None
    collections = document.get("collections")
    records = []
    if isinstance(collections, dict):
        for name, info in collections.items():
            info = info if isinstance(info, dict) else {}
            records.append({"collection": str(name), "documents": _number(info.get("documents")),
                            "bytes": _number(info.get("source_bytes")),
                            "oldest_event": _time_text(info.get("oldest_event_ts")),
                            "newest_event": _time_text(info.get("newest_event_ts"))})
    runs = []
    for run in document.get("last_runs") or []:
        if isinstance(run, dict):
            runs.append({"started_at": _time_text(run.get("started_at")), "seconds": _number(run.get("duration_s")),
                         "documents": _number(run.get("documents")), "bytes": _number(run.get("source_bytes")),
                         "mb_per_s": _number(run.get("mb_per_s"))})
    incomplete = document.get("incomplete_batches") or []
    incomplete = tuple((item.get("batch_id") if isinstance(item, dict) and item.get("batch_id") else
                        json.dumps(item, default=str) if not isinstance(item, str) else item)
                       for item in (incomplete if isinstance(incomplete, list) else []))
    return ArchiveStatus(
        collections=pd.DataFrame.from_records(
            records, columns=["collection", "documents", "bytes", "oldest_event", "newest_event"]),
        last_runs=pd.DataFrame.from_records(runs, columns=["started_at", "seconds", "documents", "bytes", "mb_per_s"]),
        incomplete_batches=tuple(str(item) for item in incomplete),
    )


def _time_text(value) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM UTC' ('' when missing or not a time)."""
    moment = parse_time(value) if isinstance(value, str) else None
    return "" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_time(text: str | None) -> dt.datetime | None:
    """A time read from Redis; text that is not ISO 8601 reads as missing (shown as "—", never an error)."""
    try:
        return parse_iso(text)
    except ValueError:
        return None


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _payload(name: str, value) -> Payload | None:
    document = _json(value)
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        return None
    rows = [row for row in document["rows"] if isinstance(row, dict)]
    alert_count = _number(document.get("alert_count"))

    def time(field):
        return parse_time(document.get(field) if isinstance(document.get(field), str) else None)

    return Payload(
        as_of=time("as_of"),
        window_minutes=_number(document.get("window_minutes")),
        rows=rows_frame(name, rows),
        alert_count=None if alert_count is None else int(alert_count),
        data_until=time("data_until"),
        history_days=_number(document.get("history_days")),
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
    """Seconds since the last KPI run finished (``kpi:last_update``)."""
    if snapshot.last_update is None:
        return None
    return max(0.0, ((now or snapshot.read_at) - snapshot.last_update).total_seconds())


def data_age_seconds(snapshot: Snapshot, now: dt.datetime | None = None) -> float | None:
    """Seconds since the newest minute the KPIs cover (``data_until``)."""
    until = snapshot.data_until
    return None if until is None else max(0.0, ((now or snapshot.read_at) - until).total_seconds())


def is_stale(snapshot: Snapshot, now: dt.datetime | None = None) -> bool:
    """The data ends more than STALE_AFTER_SECONDS ago, or KPI data without a completion time (a run that did
    not finish)."""
    if snapshot.last_update is None:
        return bool(snapshot.kpis)
    age = data_age_seconds(snapshot, now)
    if age is None:
        age = age_seconds(snapshot, now)
    return age > STALE_AFTER_SECONDS


def previous_value(history: pd.DataFrame, field: str, at: dt.datetime,
                   tolerance: dt.timedelta = dt.timedelta(minutes=5)) -> float | None:
    """The value of a headline field in the KPI run closest to ``at`` (within ``tolerance``), None if none."""
    if history.empty or field not in history:
        return None
    usable = history[history[field].notna()]
    if usable.empty:
        return None
    distance = (usable["as_of"] - at).abs()
    best = distance.idxmin()
    return float(usable.loc[best, field]) if distance[best] <= tolerance else None


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


# ---------------------------------------------------------------- card changes, scorecard, trends

CARD_FIELDS = {"total_on_hand": "total_on_hand", "stockout_alerts": "stockout_alerts",
               "on_time_rate": "avg_on_time_rate", "avg_utilization": "avg_utilization", "revenue": "revenue",
               "fill_rate": "fill_rate", "avg_lead_time_days": "avg_actual_lead_time_days"}


def previous_period(snapshot: Snapshot, filters: Filters = Filters()) -> tuple[dict[str, float | None], str]:
    """Each card's value one period earlier, from ``kpi:history`` (whole chain, so none under a filter):
    the live-window cards against the run one window (15 min) before, the supplier card against 24 h before."""
    payload = snapshot.kpis.get("regional_fulfillment") or next(iter(snapshot.kpis.values()), None)
    if filters.active() or payload is None or payload.as_of is None:
        return dict.fromkeys(CARD_FIELDS), ""
    window = dt.timedelta(minutes=payload.window_minutes or 15)
    values = {}
    for card, field in CARD_FIELDS.items():
        lag = dt.timedelta(hours=24) if card in ("on_time_rate", "avg_lead_time_days") else window
        values[card] = previous_value(snapshot.history, field, payload.as_of - lag)
    return values, f"{window.total_seconds() / 60:.0f} min"


def supplier_scorecard(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per supplier: on-time rate, actual vs planned lead time and spread, delay, in transit, overdue,
    and why a supplier has no receipt-based figures yet."""
    from scbda_assets.domain.reference import SUPPLIERS

    typical = {s.supplier_id: s.avg_lead_time_days for s in SUPPLIERS}
    notes = []
    for row in frame.to_dict("records"):
        if (row["shipments_received"] or 0) > 0:
            notes.append("")
            continue
        lead = row["avg_planned_lead_time_days"]
        lead = lead if lead == lead and lead is not None else typical.get(row["supplier_id"])
        if (row["shipments_created"] or 0) > 0 or (row["in_transit"] or 0) > 0:
            notes.append("no receipt yet" + (f": lead time ~{lead:.0f} d" if lead is not None else ""))
        else:
            notes.append("no shipment in the window")
    out = frame.assign(note=notes)
    return out.sort_values(["supplier_id"], kind="stable").reset_index(drop=True)


def daily_regions(daily: DailyHistory | None, days: int, filters: Filters = Filters(),
                  today: dt.date | None = None) -> pd.DataFrame:
    """Per UTC day (the last ``days`` before ``today``, from the daily history) the region totals: orders, revenue,
    lost revenue and fill rate (Σ fulfilled / Σ requested), over the regions the filters select."""
    columns = ["date", "orders", "revenue", "lost_revenue", "units_requested", "units_fulfilled", "fill_rate"]
    if daily is None or daily.regions.empty:
        return pd.DataFrame(columns=columns)
    frame = filters.apply(_last_days(daily.regions, days, today))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    totals = frame.groupby("date", as_index=False)[
        ["orders", "revenue", "lost_revenue", "units_requested", "units_fulfilled"]].sum(min_count=1)
    requested = totals["units_requested"].where(totals["units_requested"] > 0)
    totals["fill_rate"] = totals["units_fulfilled"] / requested
    return totals[columns].sort_values("date").reset_index(drop=True)


def daily_suppliers(daily: DailyHistory | None, days: int, today: dt.date | None = None) -> pd.DataFrame:
    """Per UTC day: shipments received and their on-time rate and actual lead time (weighted by receipts)."""
    columns = ["date", "shipments_received", "on_time_rate", "avg_actual_lead_time_days"]
    if daily is None or daily.suppliers.empty:
        return pd.DataFrame(columns=columns)
    frame = _last_days(daily.suppliers, days, today)
    frame = frame[frame["shipments_received"] > 0]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    weighted = frame.assign(_on_time=frame["on_time_rate"] * frame["shipments_received"],
                            _lead=frame["avg_actual_lead_time_days"] * frame["shipments_received"])
    totals = weighted.groupby("date", as_index=False)[["shipments_received", "_on_time", "_lead"]].sum()
    totals["on_time_rate"] = totals["_on_time"] / totals["shipments_received"]
    totals["avg_actual_lead_time_days"] = totals["_lead"] / totals["shipments_received"]
    return totals[columns].sort_values("date").reset_index(drop=True)


def _last_days(frame: pd.DataFrame, days: int, today: dt.date | None) -> pd.DataFrame:
    dates = pd.to_datetime(frame["date"], errors="coerce", utc=True)
    frame = frame.assign(date=dates).dropna(subset=["date"])
    if frame.empty:
        return frame
    end = pd.Timestamp(today, tz="UTC") if today is not None else frame["date"].max() + pd.Timedelta(days=1)
    return frame[(frame["date"] >= end - pd.Timedelta(days=days)) & (frame["date"] < end)]


def history_since(history: pd.DataFrame, hours: float, now: dt.datetime) -> pd.DataFrame:
    """The KPI runs of the last ``hours`` before ``now``."""
    if history.empty:
        return history
    return history[history["as_of"] >= now - dt.timedelta(hours=hours)]


def thin(history: pd.DataFrame, max_points: int = 288) -> pd.DataFrame:
    """At most ``max_points`` runs, evenly spaced, newest always kept (a day of minute runs drawn as 5-minute
    steps: the browser draws the page faster and a 20 cm chart shows no more detail)."""
    if len(history) <= max_points:
        return history
    step = -(-len(history) // max_points)
    keep = sorted(set(range(len(history) - 1, -1, -step)))
    return history.iloc[keep].reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")
