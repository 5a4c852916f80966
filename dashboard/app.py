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
        st.caption("An empty filter means all. Region and DC filter every DC-level view; category and SKU filter "
                   "the inventory and stockout views. Supplier figures and the trend history cover the whole chain.")
    st.session_state["_options_signature"] = _signature(options)


def _signature(options: data.Options) -> tuple:
    return tuple(options.regions), tuple(options.dcs), tuple(options.categories), tuple(options.skus)


def current_filters() -> data.Filters:
    return data.Filters(**{field: tuple(st.session_state.get(key) or ()) for field, key in FILTER_KEYS.items()})


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
    window = _window_text(snapshot)
    if age is None:
        st.warning("No completed KPI run is recorded (kpi:last\\_update is missing): the figures below may be "
                   "incomplete or old.")
    elif data.is_stale(snapshot):
        st.warning(f"Stale data: the last KPI run finished {fmt.age(age)} ago (expected every minute; stale after "
                   f"{data.STALE_AFTER_SECONDS} s). Check the kpi\\_schedule and the Dagster daemon.")
    if age is not None:
        st.caption(f"Last updated {fmt.age(age)} ago{window} · refreshes every {REFRESH_SECONDS} s")
    return True


def _window_text(snapshot: data.Snapshot) -> str:
    payload = snapshot.kpis.get("regional_fulfillment") or next(iter(snapshot.kpis.values()), None)
    if payload is None or payload.as_of is None:
        return ""
    end = payload.as_of.astimezone(LOCAL_TZ)
    minutes = f"{payload.window_minutes:.0f}-minute " if payload.window_minutes else ""
    return f" · {minutes}window ending {end:%Y-%m-%d %H:%M} PKT ({payload.as_of.astimezone(dt.UTC):%H:%M} UTC)"


def cards(snapshot: data.Snapshot, filters: data.Filters) -> None:
    h = data.headline(snapshot, filters)
    risk = data.rows(snapshot, "stockout_risk", filters)
    dcs = data.rows(snapshot, "dc_utilization", filters)
    window = f" ({h.window_minutes:.0f} min)" if h.window_minutes else ""
    columns = st.columns(5)
    with columns[0]:
        st.metric("Total on-hand units", fmt.compact_units(h.total_on_hand), border=True,
                  help=f"{fmt.units(h.total_on_hand)} units: latest snapshot of every SKU × DC in the window")
    with columns[1]:
        critical = None if risk is None else int((risk["severity"] == "critical").sum())
        st.metric("Stockout alerts", fmt.units(h.stockout_alerts), border=True,
                  delta=None if critical is None else f"{critical} critical", delta_color="off", delta_arrow="off",
                  help="SKU × DC pairs with under 7 days of cover (critical: under 2 days)")
    with columns[2]:
        st.metric("Supplier lead time", fmt.days(h.avg_lead_time_days), border=True,
                  delta=f"on-time {fmt.percent(h.on_time_rate)}", delta_color="off", delta_arrow="off",
                  help=f"Actual lead time of shipments received in the window (planned "
                       f"{fmt.days(h.avg_planned_lead_time_days)}); on-time = arrived by the expected date")
    with columns[3]:
        over = None if dcs is None else int((dcs["utilization"] > data.UTILIZATION_HIGH).sum())
        st.metric("Average DC utilization", fmt.percent(h.avg_utilization), border=True,
                  delta=None if over is None else f"{over} DC over 85 %", delta_color="off", delta_arrow="off")
    with columns[4]:
        st.metric(f"Revenue{window}", fmt.pkr(h.revenue), border=True,
                  delta=f"fill rate {fmt.percent(h.fill_rate)}", delta_color="off", delta_arrow="off",
                  help="Value of fulfilled units in the KPI window; fill rate = units fulfilled / requested")


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


def _chart(chart) -> None:
    st.altair_chart(chart, width="stretch")


def stockout_table(frame) -> None:
    table = data.stockout_table(frame)[["severity", "sku_id", "product_name", "category", "dc_name", "region_id",
                                        "on_hand_qty", "demand_per_day", "days_to_stockout"]]
    table.columns = ["Severity", "SKU", "Product", "Category", "DC", "Region", "On hand", "Demand / day",
                     "Days to stockout"]

    def colour(row):
        background = charts.SEVERITY_COLORS.get(row["Severity"], "")
        return [f"background-color: {background}" if background else ""] * len(row)

    styled = table.style.apply(colour, axis=1).format(
        {"On hand": "{:,.0f}", "Demand / day": "{:,.1f}", "Days to stockout": "{:,.1f}"}, na_rep="—")
    st.dataframe(styled, hide_index=True, height=320)


def dc_table(frame) -> None:
    table = frame.sort_values("dc_id")[["dc_id", "dc_name", "city", "region_id", "utilization", "status"]].copy()
    table["utilization"] = table["utilization"].map(fmt.percent)
    for column in ("dc_id", "dc_name", "city", "region_id", "status"):  # st.table renders cells as Markdown
        table[column] = table[column].map(fmt.escape_markdown)
    table.columns = ["DC", "Name", "City", "Region", "Utilization", "Status"]
    st.table(table.set_index("DC"))


def body(snapshot: data.Snapshot, filters: data.Filters) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Inventory by DC and category")
        if (frame := _section(snapshot, "inventory_level", filters)) is not None:
            _chart(charts.inventory_by_dc_category(frame))
    with right:
        st.subheader("Stockout risk")
        if (frame := _section(snapshot, "stockout_risk", filters)) is not None:
            stockout_table(frame)

    left, right = st.columns(2)
    with left:
        st.subheader("DC utilization")
        if (frame := _section(snapshot, "dc_utilization", filters)) is not None:
            _chart(charts.dc_utilization(frame))
    with right:
        st.subheader("Distribution centres")
        if (frame := _section(snapshot, "dc_utilization", filters)) is not None:
            _chart(charts.dc_map(frame.dropna(subset=["latitude", "longitude"])))
            st.caption("Offline map (approximate outline); circle size = capacity, colour = utilization status.")
            dc_table(frame)

    left, right = st.columns(2)
    with left:
        st.subheader("Supplier lead time: planned vs actual")
        if (frame := _section(snapshot, "supplier_performance", filters)) is not None:
            lead_times = frame[["avg_planned_lead_time_days", "avg_actual_lead_time_days"]]
            if lead_times.isna().all().all():
                st.info("No shipments created or received in the supplier window yet.")
            else:
                _chart(charts.supplier_lead_times(frame))
            st.caption("Whole chain (suppliers are not filtered).")
    with right:
        st.subheader("Regional revenue and fill rate")
        if (frame := _section(snapshot, "regional_fulfillment", filters)) is not None:
            _chart(charts.regional_revenue(frame))
            _chart(charts.regional_fill_rate(frame))
            st.caption("Region filter applies; an order belongs to the region of its DC.")

    st.subheader("KPI trends")
    history = snapshot.history
    if history.empty:
        st.info("No trend history yet (kpi:history is empty).")
    else:
        st.caption(f"Last {len(history)} KPI runs, whole chain (filters do not apply), times in UTC.")
        columns = st.columns(3)
        for index, field in enumerate(TREND_FIELDS):
            with columns[index % 3]:
                if history[field].notna().any():
                    _chart(charts.kpi_trend(history, field))
                else:
                    st.caption(f"{charts.HISTORY_TITLES[field][0]}: no values yet")

    st.subheader("Regional history (7 days)")
    regional = snapshot.regional_daily
    if regional is None:
        st.info("No 7-day history yet (history:regional\\_daily is written by the history job).")
    else:
        frame = filters.apply(regional.rows)
        if frame.empty:
            st.info("No rows match the filters." if filters.active() else "No rows yet.")
        else:
            left, right = st.columns(2)
            with left:
                _chart(charts.regional_daily(frame, "revenue", "Revenue (PKR)", ",.0f"))
            with right:
                _chart(charts.regional_daily(frame, "fill_rate", "Fill rate", ".1%"))


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
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
            cards(snapshot, current_filters())
            body(snapshot, current_filters())
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
