"""A day of stockout-risk ticks (issue 13): does days-to-stockout follow the stock, or the time of day?

Three days of history at 1× (``scbda generate --minutes 4320``), then the stockout-risk KPI as of every hour of the
last day (24 on-demand as-ofs, computed as a scheduled tick would and published nowhere). Per pair it compares the
7-day ``demand_per_day`` with the seed design's ``live_demand_per_day`` (15 minutes × 96) across those hours: their
coefficient of variation (stddev / mean over the 24 ticks), median over pairs, and the max/min ratio. Writes the
hour-by-hour table of one pair (Atta at Karachi) and the per-pair figures to ``bench/stockout_day.md``.
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from zoneinfo import ZoneInfo

import pymongo

from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.kpis.compute import compute_kpis
from scbda_assets.kpis.refresh import SparkHandle, open_spark, wall_clock
from scbda_assets.resources import spark_config
from scbda_assets.settings import Settings
from scbda_assets_tests.bench.bench_kpis import _seed_dimensions

DAYS, SEED = 3, 11
PAIR = ("SKU-STAPLE-001", "DC-KHI")  # Atta (Wheat Flour) at Karachi
LOCAL = ZoneInfo("Asia/Karachi")
REPORT = Path("bench/stockout_day.md")


def _cv(values: list[float]) -> float | None:
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean and len(values) > 1 else None


def _row(metric, value, unit, target="", note="") -> dict:
    print(f"   {metric} = {value} {unit} {target} {note}", flush=True)
    return {"benchmark": "stockout_day", "metric": metric, "value": value, "unit": unit, "target": target,
            "note": note}


def run(ctx) -> list[dict]:
    from dagster_pyspark.resources import spark_session_from_config

    from scbda_assets.generator.backfill import backfill

    base: Settings = ctx["settings"]
    settings = Settings.from_env({**base.to_env(), "SCBDA_MONGO_DB": "bench_stockout_day",
                                  "SCBDA_ARCHIVE_URI": f"{base.archive_uri.rstrip('/')}/bench_stockout_day"})
    _seed_dimensions(settings)
    end = wall_clock().replace(minute=0, second=0, microsecond=0)
    generated = backfill(settings, minutes=DAYS * 1440, end=end, seed=SEED, progress=False)
    client = pymongo.MongoClient(settings.mongo_uri, tz_aware=True)
    db = client[settings.mongo_db]
    config = spark_config(settings)
    handle = SparkHandle(lambda: open_spark(config, lambda: spark_session_from_config(config)))
    ticks: list[tuple[dt.datetime, dict]] = []
    try:
        for hours_back in range(24, 0, -1):
            as_of = end - dt.timedelta(hours=hours_back)
            run_ = handle.run(lambda spark: compute_kpis(db, spark, as_of, ("stockout_risk",), now=wall_clock(),
                                                         archive=ArchiveStore(settings.archive_uri)))
            ticks.append((as_of, {(r["sku_id"], r["dc_id"]): r for r in run_.results["stockout_risk"].rows}))
    finally:
        handle.close()
        client.drop_database(settings.mongo_db)
        client.drop_database(f"{settings.mongo_db}_history")
        client.close()

    pairs = sorted(set.intersection(*(set(rows) for _, rows in ticks)))
    figures = {}
    for pair in pairs:
        demand = [rows[pair]["demand_per_day"] for _, rows in ticks]
        live = [rows[pair]["live_demand_per_day"] for _, rows in ticks]
        if min(demand) > 0:
            figures[pair] = {"demand_cv": _cv(demand), "live_cv": _cv(live), "demand_ratio": max(demand) / min(demand),
                             "live_ratio": max(live) / min(live) if min(live) > 0 else None}
    _write_report(ticks, figures, generated["total_events"])
    demand_cv = statistics.median(f["demand_cv"] for f in figures.values())
    live_cv = statistics.median(f["live_cv"] for f in figures.values() if f["live_cv"] is not None)
    atta = figures.get(PAIR, {})
    return [
        _row("demand_per_day_cv_median", round(demand_cv, 4), "", "", f"{len(figures)} pairs, 24 hourly ticks of "
             f"the 3rd day of {generated['total_events']} events at 1x: the 7-day demand"),
        _row("live_demand_per_day_cv_median", round(live_cv, 4), "", "",
             "same ticks: 15 minutes of demand x 96 (the seed design's estimate)"),
        _row("atta_karachi_demand_max_over_min", round(atta.get("demand_ratio") or 0, 3), "x", "",
             f"live estimate: {round(atta['live_ratio'], 2) if atta.get('live_ratio') else '—'}x; table: {REPORT}"),
    ]


def _write_report(ticks, figures, events: int) -> None:
    lines = [f"# A day of stockout-risk ticks ({events:,} events over {DAYS} days at 1×)", "",
             f"{PAIR[0]} at {PAIR[1]}, one tick per hour of the last day:", "",
             "| as of (UTC) | local hour (Asia/Karachi) | on hand | live demand/day (15 min × 96) | demand/day (7 d) "
             "| days to stockout | next receipt | P(stockout) |", "|---|---|---|---|---|---|---|---|"]
    for as_of, rows in ticks:
        row = rows.get(PAIR)
        if row is None:
            continue
        days = f"{row['days_to_stockout']:.2f}" if row["days_to_stockout"] is not None else "—"
        lines.append(f"| {as_of:%m-%d %H:%M} | {as_of.astimezone(LOCAL):%H:%M} | {row['on_hand_qty']:,} | "
                     f"{row['live_demand_per_day']:,.0f} | {row['demand_per_day']:,.1f} | {days} | "
                     f"{row['next_receipt_ts'] or '—'} | {row['stockout_probability']:.3f} |")
    lines += ["", "Per pair, across the 24 ticks: coefficient of variation (stddev / mean) and max / min.", "",
              "| sku | dc | demand/day CV | live estimate CV | demand/day max/min | live max/min |",
              "|---|---|---|---|---|---|"]
    for (sku, dc), f in sorted(figures.items()):
        live_ratio = f"{f['live_ratio']:.2f}" if f["live_ratio"] else "—"
        live_cv = f"{f['live_cv']:.3f}" if f["live_cv"] is not None else "—"
        lines.append(f"| {sku} | {dc} | {f['demand_cv']:.3f} | {live_cv} | {f['demand_ratio']:.3f} | {live_ratio} |")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
