"""What is wrong now, for the digest: read from the KPI snapshot in Redis and the Dagster instance (no posting)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from scbda_assets.alerts.digest import STALE_AFTER, Observation
from scbda_assets.timeutil import parse_iso


def from_kpis(stockout: dict | None, suppliers: dict | None, now: dt.datetime) -> dict:
    """Critical pairs, overdue suppliers and staleness from the ``kpi:stockout_risk`` / ``kpi:supplier_performance``
    payloads (None: missing, which is stale)."""
    critical = frozenset(f"{r['sku_id']}@{r['dc_id']}" for r in (stockout or {}).get("rows", [])
                         if r.get("severity") == "critical")
    overdue = frozenset(r["supplier_id"] for r in (suppliers or {}).get("rows", []) if (r.get("overdue") or 0) > 0)
    as_of = parse_iso(stockout.get("as_of")) if stockout else None
    stale = frozenset({"kpis"}) if as_of is None or now - as_of > STALE_AFTER else frozenset()
    return {"critical_pairs": critical, "overdue_suppliers": overdue, "stale": stale}


def observe(redis_client, key, instance: dg.DagsterInstance, since: float,
            now: dt.datetime) -> tuple[Observation, float]:
    """The observation and the new run cursor (update timestamp of the newest failed run seen)."""
    payloads = {}
    for name in ("stockout_risk", "supplier_performance"):
        raw = redis_client.get(key(f"kpi:{name}"))
        payloads[name] = json.loads(raw) if raw else None
    kpis = from_kpis(payloads["stockout_risk"], payloads["supplier_performance"], now)
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                     updated_after=dt.datetime.fromtimestamp(since, dt.UTC)), limit=20)
    failed = tuple(f"{r.dagster_run.job_name} {r.dagster_run.run_id[:8]}" for r in records)
    newest = max([since, *(r.update_timestamp.timestamp() for r in records)])
    return Observation(**kpis, failed_runs=failed), newest
