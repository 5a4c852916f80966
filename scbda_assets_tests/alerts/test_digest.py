"""The alert digest against a real loopback HTTP receiver: enter, stay quiet, rate limit, clear; off when unset."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest

from scbda_assets.alerts import digest, observe, webhook

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def receiver():
    bodies: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", bodies
    server.shutdown()
    server.server_close()


def _run(url, state, observation, now):
    state, text = digest.step(state, observation, now)
    if text is not None:
        assert webhook.post(url, text) is None
    return state


def test_enter_quiet_rate_limit_and_all_clear(receiver):
    url, bodies = receiver
    milk = digest.Observation(critical_pairs=frozenset({"SKU-DAIRY-001@DC-KHI"}))
    state = _run(url, digest.State(), milk, T0)
    assert len(bodies) == 1 and "critical stockout risk: SKU-DAIRY-001@DC-KHI" in bodies[0]["text"]
    state = _run(url, state, milk, T0 + dt.timedelta(minutes=2))  # nothing changed: quiet
    assert len(bodies) == 1
    both = digest.Observation(critical_pairs=milk.critical_pairs, overdue_suppliers=frozenset({"SUP-IMPORT-001"}),
                              failed_runs=("kpi_job 1234abcd",))
    state = _run(url, state, both, T0 + dt.timedelta(minutes=2, seconds=30))
    assert len(bodies) == 2 and "supplier overdue: SUP-IMPORT-001" in bodies[1]["text"]
    assert "run failed: kpi_job 1234abcd" in bodies[1]["text"]
    # A change 20 s after a post waits; the next evaluation after the minute posts the net change once.
    state = _run(url, state, digest.Observation(), T0 + dt.timedelta(minutes=2, seconds=50))
    assert len(bodies) == 2
    state = _run(url, state, digest.Observation(), T0 + dt.timedelta(minutes=3, seconds=40))
    assert len(bodies) == 3
    text = bodies[2]["text"]
    assert "critical stockout risk cleared: SKU-DAIRY-001@DC-KHI" in text and "All clear" in text
    state = _run(url, state, digest.Observation(), T0 + dt.timedelta(minutes=10))
    assert len(bodies) == 3  # all clear stays quiet
    assert digest.State.from_json(json.loads(json.dumps(state.to_json()))) == state  # the sensor cursor round-trips


def test_kpi_payloads_give_critical_pairs_overdue_suppliers_and_staleness():
    stockout = {"as_of": "2026-12-01T10:00:00+00:00", "rows": [
        {"sku_id": "A", "dc_id": "K", "severity": "critical"}, {"sku_id": "B", "dc_id": "K", "severity": "warning"}]}
    suppliers = {"rows": [{"supplier_id": "S1", "overdue": 2}, {"supplier_id": "S2", "overdue": 0}]}
    fresh = observe.from_kpis(stockout, suppliers, T0 + dt.timedelta(minutes=3))
    assert fresh == {"critical_pairs": {"A@K"}, "overdue_suppliers": {"S1"}, "stale": frozenset()}
    assert observe.from_kpis(stockout, suppliers, T0 + dt.timedelta(minutes=3, seconds=1))["stale"] == {"kpis"}
    assert observe.from_kpis(None, None, T0)["stale"] == {"kpis"}


def test_an_unreachable_webhook_is_one_line():
    problem = webhook.post("http://127.0.0.1:9/hook", "x")
    assert problem is not None and problem.startswith("webhook unreachable") and "\n" not in problem


def test_the_sensor_is_off_when_the_webhook_is_unset(tmp_path):
    import dagster as dg

    from scbda_assets.alerts.sensors import alert_webhook_sensor
    from scbda_assets.resources import RedisResource, SettingsResource
    from scbda_assets.settings import Settings

    settings = SettingsResource.from_settings(Settings.from_env({"SCBDA_HOME": str(tmp_path)}))
    with dg.build_sensor_context(resources={"settings": settings,
                                            "redis": RedisResource(url="redis://127.0.0.1:9")}) as context:
        result = alert_webhook_sensor(context)
    assert isinstance(result, dg.SkipReason) and "alerts are off" in result.skip_message
