"""SCBDA dashboard (Streamlit): the KPI snapshot that the pipeline caches in Redis, refreshed every few seconds.

Reads Redis only (SCBDA_REDIS_URL, or the embedded redis-server when it runs; never starts a service). The page
shell and the filters run once per interaction; the data part is a fragment that re-reads Redis on a timer, so a
slow or absent Redis never blocks the server and the page recovers by itself when Redis returns. Redis text is
only ever shown as data (tables, chart text) or escaped; errors become one plain message, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import zoneinfo
from pathlib import Path

# pyarrow 25.0.0's bundled mimalloc segfaults when pyarrow is first loaded on a thread that exits (Streamlit's script
# thread) and a later thread allocates (apache/arrow#50471): the fragment's next chart killed the server. Use the
# system allocator, before anything imports pyarrow, and switch the pool in case something already did.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
import pyarrow  # noqa: E402

pyarrow.set_memory_pool(pyarrow.system_memory_pool())

import pandas as pd  # noqa: E402
import redis  # noqa: E402
import streamlit as st  # noqa: E402

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository: make `dashboard` importable.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from dashboard import charts, data  # noqa: E402
from dashboard import formatting as fmt  # noqa: E402
from scbda_assets.settings import ConfigError, Settings, redact  # noqa: E402

REFRESH_SECONDS = 5
LOCAL_TZ = zoneinfo.ZoneInfo("Asia/Karachi")
FILTER_KEYS = {"regions": "filter_region", "dcs": "filter_dc", "categories": "filter_category", "skus": "filter_sku"}
TREND_FIELDS = ("total_on_hand", "stockout_alerts", "fill_rate", "avg_utilization", "revenue", "avg_on_time_rate")
TREND_RANGES = {"24 h": None, "7 d": 7, "30 d": 30}
DC_PICK_KEYS = ("dc_pick_utilization", "dc_pick_map")
log = logging.getLogger("scbda.dashboard")


@st.cache_resource(show_spinner=False)
def _client(url: str) -> redis.Redis:
    return data.connect(url)


@st.cache_resource(show_spinner=False)
def _history_cache(url: str, stream_key: str) -> data.HistoryCache:
    return data.HistoryCache()


class Unavailable(Exception):
    """Why there is no snapshot to show; ``str()`` is the plain message for the viewer (already escaped)."""


def load_snapshot() -> data.Snapshot:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise Unavailable(f"Configuration error: {fmt.escape_markdown(exc)}") from None
    url = data.redis_url(settings)
    if url is None:
        raise Unavailable("Redis is not running. Start the pipeline (`make run` or `scbda services up`) or set "
                          f"SCBDA\\_REDIS\\_URL; this page checks again every {REFRESH_SECONDS} s.")
    try:
        history = _history_cache(url, settings.redis_key(data.HISTORY_STREAM))
        return data.read_snapshot(_client(url), settings, history=history)
    except redis.RedisError:
        raise Unavailable(f"Redis is unreachable at {fmt.escape_markdown(redact(url))}. This page retries every "
                          f"{REFRESH_SECONDS} s and recovers by itself when Redis is back.") from None


# ---------------------------------------------------------------- filters (sidebar, outside the fragment)


def _multiselect(label: str, key: str, options: dict[str, str]) -> None:
    # A value that disappeared from the data (or from a narrower parent filter) is dropped, not an error.
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
    st.multiselect(label, list(options), key=key, format_func=lambda value: options.get(value, value),
                   placeholder="All")


def sidebar(options: data.Options) -> None:
    with st.sidebar:
        st.header("Filters")
        _multiselect("Region", FILTER_KEYS["regions"], options.regions)
        regions = st.session_state.get(FILTER_KEYS["regions"]) or list(options.regions)
        _multiselect("Distribution centre", FILTER_KEYS["dcs"],
                     {dc: f"{dc} · {name}" for dc, name in options.dcs.items()
                      if options.dc_region.get(dc) in regions or dc not in options.dc_region})
        _multiselect("Category", FILTER_KEYS["categories"], {c: c for c in options.categories})
        categories = st.session_state.get(FILTER_KEYS["categories"]) or options.categories
        _multiselect("SKU", FILTER_KEYS["skus"],
                     {sku: f"{sku} · {name}" for sku, name in options.skus.items()
                      if options.sku_category.get(sku) in categories or sku not in options.sku_category})
        st.caption("An empty filter means all. Click a DC in the utilization chart or on the map to filter the "
                   "page by it. Region and DC filter every DC-level view; category and SKU filter the inventory "
                   "and stockout views. Supplier figures and the trend history cover the whole chain.")
    st.session_state["_options_signature"] = _signature(options)


def _signature(options: data.Options) -> tuple:
    return tuple(options.regions), tuple(options.dcs), tuple(options.categories), tuple(options.skus)


def current_filters() -> data.Filters:
    return data.Filters(**{field: tuple(st.session_state.get(key) or ()) for field, key in FILTER_KEYS.items()})


def _picked_dc(chart_key: str) -> None:
    """A click on a DC (bar or map point) filters the whole page by it; runs before the rerun (a callback)."""
    state = st.session_state.get(chart_key) or {}
    selection = (state.get("selection") or {}).get("dc_pick") or []
    picked = [item.get("dc_id") for item in selection if isinstance(item, dict) and item.get("dc_id")]
    if picked:
        st.session_state[FILTER_KEYS["dcs"]] = sorted(set(picked))
        st.session_state["_rerun_page"] = True  # the sidebar lives outside the fragment


# ---------------------------------------------------------------- the live part


def status(snapshot: data.Snapshot) -> bool:
    """Freshness line and warnings. False when there is nothing to show."""
    if snapshot.malformed:
        st.warning("Ignored malformed data in Redis: " + ", ".join(map(fmt.escape_markdown, snapshot.malformed)))
    if snapshot.empty:
        st.info("No data yet: Redis holds no KPI snapshot (no KPI run has finished, or the last one is older than "
                "the keys' TTL). Start the pipeline with `make run` or compute once with `scbda kpis`; this page "
                "fills in by itself.")
        return False
    age = data.age_seconds(snapshot)
    data_age = data.data_age_seconds(snapshot)
    if age is None:
        st.warning("No completed KPI run is recorded (kpi:last\\_update is missing): the figures below may be "
                   "incomplete or old.")
    elif data.is_stale(snapshot):
        st.warning(f"Stale data: the KPIs cover data up to {fmt.age(data_age if data_age is not None else age)} ago "
                   f"(last run finished {fmt.age(age)} ago; expected every minute, stale after "
                   f"{fmt.age(data.STALE_AFTER_SECONDS)}). Check the kpi\\_schedule, the generator and the Dagster "
                   "daemon.")
    if age is not None:
        st.caption(f"Last updated {fmt.age(age)} ago{_window_text(snapshot)} · refreshes every {REFRESH_SECONDS} s")
    return True


def _window_text(snapshot: data.Snapshot) -> str:
    payload = snapshot.kpis.get("regional_fulfillment") or next(iter(snapshot.kpis.values()), None)
    if payload is None:
        return ""
    end = payload.data_until or payload.as_of
    if end is None:
        return ""
    minutes = f"{payload.window_minutes:.0f}-minute " if payload.window_minutes else ""
    local = end.astimezone(LOCAL_TZ)
    return f" · {minutes}window, data until {local:%Y-%m-%d %H:%M} PKT ({end.astimezone(dt.UTC):%H:%M} UTC)"


def _change(current, previous, kind: str) -> str | None:
    """The card's change against the previous period: relative % for amounts, points for rates, count for
    alerts; None without both values."""
    if current is None or previous is None:
        return None
    if kind == "rate":
        return f"{(current - previous) * 100:+.1f} pp"
    if kind == "count":
        return f"{current - previous:+,.0f}"
    if kind == "days":
        return f"{current - previous:+.2f} d"
    if previous == 0:
        return None
    return f"{(current - previous) / abs(previous) * 100:+.1f} %"


def _demand_at_risk(risk) -> str:
    """Expected units (and PKR) the stock will not serve before the next receipts, over the shown pairs."""
    if risk is None or "demand_at_risk_units" not in risk:
        return "demand at risk —"
    return (f"demand at risk {fmt.units(risk['demand_at_risk_units'].sum())} units, "
            f"{fmt.pkr(risk['demand_at_risk_pkr'].sum())}")


def cards(snapshot: data.Snapshot, filters: data.Filters) -> None:
    h = data.headline(snapshot, filters)
    before, period = data.previous_period(snapshot, filters)
    risk = data.rows(snapshot, "stockout_risk", filters)
    dcs = data.rows(snapshot, "dc_utilization", filters)
    inventory = data.rows(snapshot, "inventory_level", filters)
    window = f" ({h.window_minutes:.0f} min)" if h.window_minutes else ""
    versus = f"change vs the run {period} earlier" if period else "no change shown under a filter (history is whole-chain)"
    columns = st.columns(5)
    with columns[0]:
        st.metric("On-hand units", fmt.compact_units(h.total_on_hand), border=True,
                  delta=_change(h.total_on_hand, before["total_on_hand"], "amount"), delta_color="off",
                  help=f"{fmt.units(h.total_on_hand)} units: latest snapshot of every SKU × DC in the window; "
                       f"{versus}")
        below = None if inventory is None else int(inventory["below_safety_stock"].sum())
        st.caption(f"{fmt.units(below)} SKU × DC below safety stock")
    with columns[1]:
        critical = None if risk is None else int((risk["severity"] == "critical").sum())
        st.metric("Stockout alerts", fmt.units(h.stockout_alerts), border=True,
                  delta=_change(h.stockout_alerts, before["stockout_alerts"], "count"), delta_color="inverse",
                  help=f"SKU × DC pairs whose probability of running out before the next receipt is 10 % or more "
                       f"(critical: 50 % or more); {versus}")
        st.caption(f"pairs at risk; {fmt.units(critical)} critical · " + _demand_at_risk(risk))
    with columns[2]:
        st.metric("Lead time", fmt.days(h.avg_lead_time_days), border=True,
                  delta=_change(h.avg_lead_time_days, before["avg_lead_time_days"], "days"), delta_color="inverse",
                  help="Average actual supplier lead time of shipments received in the history window; change vs "
                       "24 h earlier; on-time = arrived by the expected date")
        change = _change(h.on_time_rate, before["on_time_rate"], "rate")
        st.caption(f"on-time {fmt.percent(h.on_time_rate)}" + (f" ({change})" if change else "")
                   + f" · planned {fmt.days(h.avg_planned_lead_time_days)}")
    with columns[3]:
        over = None if dcs is None else int((dcs["utilization"] > data.UTILIZATION_HIGH).sum())
        st.metric("DC utilization", fmt.percent(h.avg_utilization), border=True,
                  delta=_change(h.avg_utilization, before["avg_utilization"], "rate"), delta_color="inverse",
                  help=f"Average DC utilization: mean of the DCs' volume / capacity; {versus}")
        st.caption(f"{fmt.units(over)} DC over 85 %")
    with columns[4]:
        st.metric("Revenue (PKR)", fmt.compact_units(h.revenue), border=True,
                  delta=_change(h.revenue, before["revenue"], "amount"),
                  help=f"{fmt.pkr(h.revenue)}: value of fulfilled units in the KPI window{window}; fill rate = units fulfilled / requested; "
                       f"{versus}")
        change = _change(h.fill_rate, before["fill_rate"], "rate")
        st.caption(f"fill rate {fmt.percent(h.fill_rate)}" + (f" ({change})" if change else "")
                   + (f" · {h.window_minutes:.0f}-min window" if h.window_minutes else ""))


def _section(snapshot: data.Snapshot, name: str, filters: data.Filters):
    """The filtered rows of a KPI, or None after telling the viewer why there is nothing to draw."""
    frame = data.rows(snapshot, name, filters)
    if frame is None:
        st.info(f"No data yet for {name.replace('_', ' ')}.")
        return None
    if frame.empty:
        st.info("No rows match the filters." if filters.applies_to(snapshot.kpis[name].rows) else "No rows yet.")
        return None
    return frame


def _chart(chart, key: str | None = None) -> None:
    if key is None:
        st.altair_chart(chart, width="stretch")
    else:
        st.altair_chart(chart, width="stretch", key=key, on_select=lambda: _picked_dc(key),
                        selection_mode="dc_pick")


def _download(frame, name: str) -> None:
    st.download_button(f"Download CSV ({len(frame)} rows)", data.csv_bytes(frame), file_name=f"{name}.csv",
                       mime="text/csv", key=f"csv_{name}", on_click="ignore")


def _utc(text: str) -> str:
    moment = data.parse_time(text) if text else None
    return fmt.MISSING if moment is None else f"{moment.astimezone(dt.UTC):%b %d %H:%M}"


def _shown(frame, formats: dict):
    """Display copy of a table: numbers formatted as text ("—" when missing; Streamlit would print "None")."""
    out = frame.copy()
    for column, formatter in formats.items():
        out[column] = out[column].map(formatter)
    return out


def stockout_section(frame) -> None:
    ordered = data.stockout_table(frame)
    for column in ("forecast_24h_units", "demand_at_risk_units"):  # payloads written before the forecast
        if column not in ordered:
            ordered[column] = None
    table = _shown(ordered[["severity", "product_name", "dc_name", "on_hand_qty", "on_order_qty",
                            "forecast_24h_units", "days_to_stockout", "next_receipt_ts", "stockout_probability",
                            "demand_at_risk_units"]],
                   {"on_hand_qty": fmt.units, "on_order_qty": fmt.units, "forecast_24h_units": fmt.units,
                    "days_to_stockout": fmt.days, "next_receipt_ts": _utc,
                    "stockout_probability": lambda v: fmt.percent(v, 0), "demand_at_risk_units": fmt.units})
    table.columns = ["Severity", "Product", "DC", "On hand", "On order", "Forecast 24 h", "Cover",
                     "Next receipt", "P(stockout)", "At risk (units)"]

    def colour(row):
        background = charts.SEVERITY_COLORS.get(row["Severity"], "")
        return [f"background-color: {background}" if background and column in ("Severity", "P(stockout)", "Cover") else ""
                for column in row.index]

    st.dataframe(table.style.apply(colour, axis=1), hide_index=True, height=320, width="stretch")
    st.caption("Severity from P(stockout) = probability that demand until the next receipt (or the SKU's lead "
               "time) exceeds the stock, from the seasonal forecast and a count distribution (critical ≥ 50 %, "
               "warning ≥ 10 %). Cover = on hand / demand per day (7-day average). At risk = expected units not "
               "served before the receipt. Next receipt (UTC): — when nothing is in transit.")
    _download(ordered, "stockout_risk")


def dc_section(frame) -> None:
    table = _shown(frame.sort_values("dc_id")[["dc_id", "dc_name", "status", "utilization",
                                               "projected_utilization", "volume_m3", "inbound_m3", "capacity_m3",
                                               ]],
                   {"utilization": fmt.percent, "projected_utilization": fmt.percent, "volume_m3": fmt.units,
                    "inbound_m3": fmt.units, "capacity_m3": fmt.units})
    table.columns = ["DC", "Name", "Status", "Utilization", "With inbound", "Volume m³", "Inbound m³",
                     "Capacity m³"]
    st.dataframe(table, hide_index=True, width="stretch")
    _download(frame.drop(columns=["latitude", "longitude"]), "dc_utilization")


def supplier_section(frame) -> None:
    card = data.supplier_scorecard(frame)

    def spread(mean, sd) -> str:
        return fmt.MISSING if mean is None or mean != mean else (
            f"{mean:.2f} d" if sd is None or sd != sd else f"{mean:.2f} ± {sd:.2f} d")

    table = pd.DataFrame({
        "Supplier": card["supplier_name"], "Note": card["note"], "On-time": card["on_time_rate"].map(fmt.percent),
        "Received": card["shipments_received"].map(fmt.units),
        "Actual lead": [spread(m, d) for m, d in zip(card["avg_actual_lead_time_days"],
                                                     card["stddev_actual_lead_time_days"])],
        "Planned lead": [spread(m, d) for m, d in zip(card["avg_planned_lead_time_days"],
                                                      card["stddev_planned_lead_time_days"])],
        "Avg delay": card["avg_delay_days"].map(lambda v: fmt.days(v, 2)),
        "Created": card["shipments_created"].map(fmt.units), "In transit": card["in_transit"].map(fmt.units),
        "Overdue": card["overdue"].map(fmt.units)})
    st.dataframe(table, hide_index=True, width="stretch")
    _download(card, "supplier_scorecard")


def body(snapshot: data.Snapshot, filters: data.Filters) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("DC utilization and inbound")
        if (frame := _section(snapshot, "dc_utilization", filters)) is not None:
            _chart(charts.dc_utilization(frame), key=DC_PICK_KEYS[0])
            st.caption("Dashed lines: high above 85 %, critical at 90 %. Click a DC to filter the page.")
    with right:
        st.subheader("Distribution centres")
        if (frame := _section(snapshot, "dc_utilization", filters)) is not None:
            _chart(charts.dc_map(frame.dropna(subset=["latitude", "longitude"])), key=DC_PICK_KEYS[1])
            st.caption("Offline map (approximate outline); circle size = capacity, colour = utilization status. "
                       "Click a DC to filter the page.")
    if (frame := data.rows(snapshot, "dc_utilization", filters)) is not None and not frame.empty:
        dc_section(frame)

    st.subheader("Stockout risk")
    if (frame := _section(snapshot, "stockout_risk", filters)) is not None:
        stockout_section(frame)

    left, right = st.columns(2)
    with left:
        st.subheader("Inventory by DC and category")
        if (frame := _section(snapshot, "inventory_level", filters)) is not None:
            _chart(charts.inventory_by_dc_category(frame))
            _download(frame, "inventory_level")
    with right:
        st.subheader("Regional revenue and fill rate")
        if (frame := _section(snapshot, "regional_fulfillment", filters)) is not None:
            _chart(charts.regional_revenue(frame))
            _chart(charts.regional_fill_rate(frame))
            _download(frame, "regional_fulfillment")

    payload = snapshot.kpis.get("supplier_performance")
    days = f" ({payload.history_days:g} days)" if payload is not None and payload.history_days else ""
    st.subheader(f"Supplier scorecard{days}")
    if (frame := _section(snapshot, "supplier_performance", filters)) is not None:
        supplier_section(frame)
        left, _ = st.columns(2)
        with left:
            if frame[["avg_planned_lead_time_days", "avg_actual_lead_time_days"]].isna().all().all():
                st.info("No shipments created or received in the supplier window yet.")
            else:
                _chart(charts.supplier_lead_times(frame))
        st.caption("Whole chain (suppliers are not filtered). Lead times over the history window; a supplier whose "
                   "lead time is longer than the history so far has no receipt yet.")

    trends(snapshot, filters)


def trends(snapshot: data.Snapshot, filters: data.Filters) -> None:
    st.subheader("Trends")
    choice = st.radio("Range", list(TREND_RANGES), horizontal=True, key="trend_range", label_visibility="collapsed")
    days = TREND_RANGES.get(choice)
    if days is None:
        history = data.history_since(snapshot.history, 24, snapshot.read_at)
        if history.empty:
            st.info("No trend history yet (kpi:history fills with one entry per KPI run).")
            return
        shown = data.thin(history)
        every = "" if len(shown) == len(history) else f", drawn every {round(len(history) / len(shown))} runs"
        st.caption(f"Last {len(history)} KPI runs (up to 24 h{every}), whole chain (filters do not apply), "
                   "times in UTC.")
        history = shown
        drawn = [field for field in TREND_FIELDS if history[field].notna().any()]
        for field in TREND_FIELDS:
            if field not in drawn:
                st.caption(f"{charts.HISTORY_TITLES[field][0]}: no values yet")
        if drawn:
            _chart(charts.small_multiples([charts.kpi_trend(history, field).properties(width=210)
                                           for field in drawn]))
        return
    if snapshot.daily is None:
        st.info("No daily history yet (history:daily is written by the history job every few minutes).")
        return
    regions = data.daily_regions(snapshot.daily, days, filters)
    suppliers = data.daily_suppliers(snapshot.daily, days)
    if regions.empty and suppliers.empty:
        st.info("No daily history yet for this range.")
        return
    covered = regions["date"].nunique() if not regions.empty else suppliers["date"].nunique()
    st.caption(f"Per UTC day, {covered} of the last {days} days held data; region filter applies to orders.")
    panels = [(regions, "revenue", "Revenue per day (PKR)", ",.0f"), (regions, "fill_rate", "Fill rate", ".1%"),
              (regions, "orders", "Orders per day", ",.0f"),
              (suppliers, "on_time_rate", "Supplier on-time rate", ".1%"),
              (suppliers, "avg_actual_lead_time_days", "Actual lead time (days)", ".2f"),
              (suppliers, "shipments_received", "Shipments received", ",.0f")]
    drawn = []
    for frame, field, title, number_format in panels:
        if frame.empty or frame[field].isna().all():
            st.caption(f"{title}: no values yet")
        else:
            drawn.append(charts.daily_trend(frame, field, title, number_format).properties(width=210))
    if drawn:
        _chart(charts.small_multiples(drawn))


def archive_footer(snapshot: data.Snapshot) -> None:
    st.divider()
    st.subheader("Archive (cold store)")
    status = snapshot.archive
    if status is None:
        st.caption("No archive status in Redis yet (archive:status is written by each archive run).")
        return
    if status.incomplete_batches:
        st.warning("Incomplete archive batch: " + ", ".join(map(fmt.escape_markdown, status.incomplete_batches))
                   + " (recovered by the next archive run).")
    if status.collections.empty:
        st.caption("Nothing archived yet.")
    else:
        table = _shown(status.collections, {"bytes": fmt.megabytes, "documents": fmt.units})
        table.columns = ["Collection", "Documents", "Size", "Oldest event", "Newest event"]
        st.dataframe(table, hide_index=True, width="stretch")
    if status.last_runs.empty:
        st.caption("No archive run recorded yet.")
    else:
        runs = _shown(status.last_runs, {"bytes": fmt.megabytes, "documents": fmt.units,
                                         "seconds": lambda v: fmt.MISSING if v is None or v != v else f"{v:,.1f}",
                                         "mb_per_s": lambda v: fmt.MISSING if v is None or v != v else f"{v:,.1f}"})
        runs.columns = ["Last runs: started", "Seconds", "Documents", "Size", "MB/s"]
        st.dataframe(runs, hide_index=True, width="stretch")


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    if st.session_state.pop("_rerun_page", False):
        st.rerun(scope="app")  # a DC was clicked: redraw the sidebar filters and the page
    try:
        snapshot = load_snapshot()
    except Unavailable as exc:
        st.error(str(exc))
        return
    except Exception:
        log.exception("reading the KPI snapshot failed")
        st.error(f"The KPI snapshot could not be read. This page retries every {REFRESH_SECONDS} s.")
        return
    if _signature(data.filter_options(snapshot)) != st.session_state.get("_options_signature"):
        st.rerun(scope="app")  # new ids appeared (or Redis came back): rebuild the filter lists once
    try:
        if status(snapshot):
            filters = current_filters()
            cards(snapshot, filters)
            body(snapshot, filters)
        archive_footer(snapshot)
    except Exception:
        log.exception("drawing the dashboard failed")
        st.error(f"Part of the dashboard could not be drawn from the current snapshot. It retries every "
                 f"{REFRESH_SECONDS} s.")


def main() -> None:
    st.set_page_config(page_title="SCBDA supply chain KPIs", page_icon="📦", layout="wide")
    st.title("Supply chain KPIs")
    try:
        options = data.filter_options(load_snapshot())
    except Exception:  # the live part below says why; the filters start empty and fill in when data arrives
        options = data.filter_options(data.empty_snapshot(dt.datetime.now(dt.UTC)))
    sidebar(options)
    live()


main()
