"""A short soak: what `make run` runs (services, dagster dev with the minute schedules and the size sensor,
dashboard), for a few minutes at a small rate with a tiny archive threshold. The long soak is `make soak`."""

from __future__ import annotations

import pytest

from pathlib import Path

from scbda_assets.soak import run_soak


@pytest.mark.subprocess_clock
@pytest.mark.slow
def test_short_soak_loses_nothing_and_keeps_kpis_fresh(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("SCBDA_")]:
        monkeypatch.delenv(key)
    report = run_soak(minutes=4, rate=300, threshold_mb=0.25, base_home=tmp_path, sample_seconds=10,
                      history_minutes=150)

    assert report["failed_runs"] == 0, report["runs"]
    by_status = report["runs"]["by_status"]
    assert by_status.get("SUCCESS", 0) >= 6, by_status  # generator + KPI runs every minute, archival, history
    assert report["kpi_longest_staleness_s"] is not None and report["kpi_longest_staleness_s"] <= 90
    assert report["archived_mb"] > 0  # the size sensor archived the oldest hours on its own
    for collection, ids in report["ids"].items():
        assert ids["generated"] > 0, collection
        assert ids["lost"] == 0, (collection, ids)
        assert ids["in_both"] == 0 and ids["duplicated_in_archive"] == 0, (collection, ids)
    assert report["ids"]["orders_fact"]["in_archive"] > 0
    assert report["rss_mb_peak_total"] > report["rss_mb_peak_embedded_services"] > 0
    assert "mongod" in report["rss_mb_peak_by_process"]
    # Everything the soak started is stopped again (a service's state file goes when it is stopped).
    assert list((Path(report["state_folder"]) / "services").glob("*.json")) == []
