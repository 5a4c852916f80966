"""Altair (Vega-Lite) charts of the dashboard. Everything renders in the browser from the page's own data: no map
tiles, no remote fonts or data. Text from Redis is drawn as SVG/canvas text, never interpreted as HTML."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.data import UTILIZATION_CRITICAL, UTILIZATION_HIGH
from dashboard.geography import outline_geojson

STATUS_COLORS = alt.Scale(domain=["ok", "high", "critical"], range=["#2e7d32", "#f9a825", "#c62828"])
LABEL_LEFT = ("DC-FSD",)
SEVERITY_COLORS = {"critical": "#ffcdd2", "warning": "#ffe0b2", "ok": "#c8e6c9"}
# SI prefixes, but billions as "B" (Vega's "~s" says "G")
PKR_AXIS = alt.Axis(labelExpr="replace(format(datum.value, '~s'), 'G', 'B')")
HISTORY_TITLES = {
    "total_on_hand": ("Total on-hand units", ",.0f"),
    "stockout_alerts": ("Stockout alerts", ",.0f"),
    "avg_utilization": ("Average DC utilization", ".1%"),
    "fill_rate": ("Fill rate", ".1%"),
    "revenue": ("Revenue in window (PKR)", ",.0f"),
    "avg_on_time_rate": ("Supplier on-time rate", ".1%"),
    "avg_actual_lead_time_days": ("Actual lead time (days)", ".2f"),
}


def inventory_by_dc_category(frame: pd.DataFrame) -> alt.Chart:
    data = frame.groupby(["dc_name", "category"], as_index=False)["on_hand_qty"].sum()
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("dc_name:N", title=None, sort="-x", axis=alt.Axis(labelLimit=220)),
        x=alt.X("sum(on_hand_qty):Q", title="On-hand units"),
        color=alt.Color("category:N", title="Category"),
        tooltip=[alt.Tooltip("dc_name:N", title="DC"), alt.Tooltip("category:N", title="Category"),
                 alt.Tooltip("on_hand_qty:Q", title="On hand", format=",.0f")],
    ).properties(height=300)


def supplier_lead_times(frame: pd.DataFrame) -> alt.Chart:
    data = frame.melt(id_vars=["supplier_name", "on_time_rate", "shipments_received", "shipments_created"],
                      value_vars=["avg_planned_lead_time_days", "avg_actual_lead_time_days"],
                      var_name="kind", value_name="days")
    data["kind"] = data["kind"].map({"avg_planned_lead_time_days": "planned", "avg_actual_lead_time_days": "actual"})
    return alt.Chart(data.dropna(subset=["days"])).mark_bar().encode(
        y=alt.Y("supplier_name:N", title=None, axis=alt.Axis(labelLimit=220)),
        yOffset=alt.YOffset("kind:N", sort=["planned", "actual"]),
        x=alt.X("days:Q", title="Lead time (days)"),
        color=alt.Color("kind:N", title="Lead time", sort=["planned", "actual"],
                        scale=alt.Scale(domain=["planned", "actual"], range=["#90caf9", "#1565c0"])),
        tooltip=[alt.Tooltip("supplier_name:N", title="Supplier"), alt.Tooltip("kind:N", title="Lead time"),
                 alt.Tooltip("days:Q", format=".2f", title="Days"),
                 alt.Tooltip("on_time_rate:Q", format=".1%", title="On-time rate"),
                 alt.Tooltip("shipments_created:Q", title="Shipments created"),
                 alt.Tooltip("shipments_received:Q", title="Shipments received")],
    ).properties(height=300)


def dc_pick() -> alt.Parameter:
    """Clicking a DC (a bar or a map point) selects its dc_id; the page turns that into the DC filter."""
    return alt.selection_point(name="dc_pick", fields=["dc_id"], on="click", clear=False)


def dc_utilization(frame: pd.DataFrame) -> alt.LayerChart:
    """Utilization now (bar, coloured by status) and with the inbound shipments in transit (the lighter extension
    to the projected utilization), against the high and critical thresholds."""
    projected = frame["projected_utilization"].fillna(frame["utilization"])
    top = max(1.0, float(pd.concat([frame["utilization"], projected]).max() or 0) + 0.05)
    data = frame.assign(projected=projected)
    pick = dc_pick()
    tooltip = [alt.Tooltip("dc_name:N", title="DC"), alt.Tooltip("utilization:Q", format=".1%"),
               alt.Tooltip("projected:Q", format=".1%", title="With inbound"),
               alt.Tooltip("volume_m3:Q", format=",.0f", title="Volume m³"),
               alt.Tooltip("inbound_m3:Q", format=",.0f", title="Inbound m³"),
               alt.Tooltip("capacity_m3:Q", format=",.0f", title="Capacity m³"), alt.Tooltip("status:N")]
    y = alt.Y("dc_name:N", title=None, axis=alt.Axis(labelLimit=220),
              sort=alt.EncodingSortField("utilization", op="max", order="descending"))
    inbound = alt.Chart(data).mark_bar(color="#90caf9", opacity=0.8).encode(
        y=y, x=alt.X("utilization:Q"), x2="projected:Q", tooltip=tooltip)
    bars = alt.Chart(data).mark_bar(cursor="pointer").encode(
        y=y,
        x=alt.X("utilization:Q", title="Utilization (light blue: + inbound)",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, top])),
        color=alt.Color("status:N", title="Status", scale=STATUS_COLORS, legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.45)),
        tooltip=tooltip,
    ).add_params(pick)
    labels = [f"high > {UTILIZATION_HIGH:.0%}", f"critical ≥ {UTILIZATION_CRITICAL:.0%}"]
    thresholds = pd.DataFrame({"value": [UTILIZATION_HIGH, UTILIZATION_CRITICAL], "label": labels})
    rules = alt.Chart(thresholds).mark_rule(strokeDash=[6, 4], strokeWidth=2).encode(
        x="value:Q", color=alt.Color("label:N", legend=None,
                                     scale=alt.Scale(domain=labels, range=["#f9a825", "#c62828"])),
        tooltip=[alt.Tooltip("label:N", title="Threshold")])
    return alt.layer(inbound, bars, rules).resolve_scale(color="independent").properties(height=260)


def dc_map(frame: pd.DataFrame) -> alt.LayerChart:
    outline = alt.Chart(alt.Data(values=[outline_geojson()])).mark_geoshape(
        fill="#eef2f6", stroke="#90a4ae", strokeWidth=1)
    pick = dc_pick()
    points = alt.Chart(frame).mark_circle(stroke="white", strokeWidth=1, cursor="pointer").encode(
        longitude="longitude:Q", latitude="latitude:Q",
        size=alt.Size("capacity_m3:Q", title="Capacity m³", scale=alt.Scale(range=[150, 900])),
        color=alt.Color("status:N", title="Status", scale=STATUS_COLORS),
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.35)),
        tooltip=[alt.Tooltip("dc_name:N", title="DC"), alt.Tooltip("city:N"), alt.Tooltip("region_id:N"),
                 alt.Tooltip("utilization:Q", format=".1%"), alt.Tooltip("capacity_m3:Q", format=",.0f")],
    ).add_params(pick)
    # Lahore and Faisalabad are 130 km apart: Faisalabad's label goes to the left so they do not overlap
    left = frame["dc_id"].isin(LABEL_LEFT)
    labels_right = alt.Chart(frame[~left]).mark_text(align="left", dx=12, fontSize=12).encode(
        longitude="longitude:Q", latitude="latitude:Q", text="city:N")
    labels_left = alt.Chart(frame[left]).mark_text(align="right", dx=-12, fontSize=12).encode(
        longitude="longitude:Q", latitude="latitude:Q", text="city:N")
    return alt.layer(outline, points, labels_right, labels_left).project(type="mercator").properties(height=420)


def regional_revenue(frame: pd.DataFrame) -> alt.Chart:
    return alt.Chart(frame).mark_bar(color="#1565c0").encode(
        y=alt.Y("region_name:N", title=None, sort="-x"),
        x=alt.X("revenue:Q", title="Revenue (PKR)", axis=PKR_AXIS),
        tooltip=[alt.Tooltip("region_name:N", title="Region"),
                 alt.Tooltip("revenue:Q", format=",.0f", title="Revenue (PKR)"),
                 alt.Tooltip("lost_revenue:Q", format=",.0f", title="Lost revenue (PKR)"),
                 alt.Tooltip("orders:Q", format=",.0f"), alt.Tooltip("avg_order_value:Q", format=",.0f",
                                                                      title="Avg order (PKR)")],
    ).properties(height=220)


def regional_fill_rate(frame: pd.DataFrame) -> alt.Chart:
    return alt.Chart(frame).mark_bar(color="#2e7d32").encode(
        y=alt.Y("region_name:N", title=None, sort="-x"),
        x=alt.X("fill_rate:Q", title="Fill rate", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip("region_name:N", title="Region"), alt.Tooltip("fill_rate:Q", format=".2%"),
                 alt.Tooltip("units_requested:Q", format=",.0f"), alt.Tooltip("units_fulfilled:Q", format=",.0f")],
    ).properties(height=220)


def kpi_trend(history: pd.DataFrame, field: str) -> alt.Chart:
    title, number_format = HISTORY_TITLES[field]
    axis = alt.Axis(format="%") if number_format.endswith("%") else PKR_AXIS
    return alt.Chart(history[["as_of", field]].dropna()).mark_line(point=len(history) < 30).encode(
        x=alt.X("as_of:T", title=None),
        y=alt.Y(f"{field}:Q", title=None, axis=axis, scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("as_of:T", format="%Y-%m-%d %H:%M", title="as of (UTC)"),
                 alt.Tooltip(f"{field}:Q", format=number_format, title=title)],
    ).properties(title=title, height=170)


def daily_trend(frame: pd.DataFrame, field: str, title: str, number_format: str) -> alt.Chart:
    axis = alt.Axis(format="%") if number_format.endswith("%") else PKR_AXIS
    return alt.Chart(frame[["date", field]].dropna()).mark_line(point=True).encode(
        x=alt.X("date:T", title=None, axis=alt.Axis(format="%b %d")),
        y=alt.Y(f"{field}:Q", title=None, axis=axis, scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("date:T", format="%Y-%m-%d", title="day (UTC)"),
                 alt.Tooltip(f"{field}:Q", format=number_format, title=title)],
    ).properties(title=title, height=170)


def small_multiples(charts_: list[alt.Chart], columns: int = 3) -> alt.ConcatChart:
    """Several small charts as ONE Vega view (one embed in the page instead of one each: faster to draw)."""
    return alt.concat(*charts_, columns=columns).resolve_scale(x="independent", y="independent")
