"""The alert sensor (thin wiring): observe, step the digest, post; the digest state lives in the cursor."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from scbda_assets.alerts import digest, observe, webhook
from scbda_assets.resources import RedisResource, SettingsResource


@dg.sensor(
    name="alert_webhook_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one digest per change to SCBDA_ALERT_WEBHOOK_URL (JSON {text}): pairs entering or leaving "
    "critical stockout risk, suppliers turning overdue, failed runs, KPIs stale > 3 min; an all-clear when they "
    "clear; at most one post a minute. Off when the variable is unset.",
)
def alert_webhook_sensor(context: dg.SensorEvaluationContext, redis: RedisResource, settings: SettingsResource):
    url = settings.get().alert_webhook_url
    if not url:
        return dg.SkipReason("SCBDA_ALERT_WEBHOOK_URL is not set: alerts are off")
    now = dt.datetime.now(dt.UTC)
    cursor = json.loads(context.cursor) if context.cursor else {"runs_since": now.timestamp()}
    observation, runs_since = observe.observe(redis.client(), redis.key, context.instance, cursor["runs_since"], now)
    state, text = digest.step(digest.State.from_json(cursor.get("state")), observation, now)
    if text is not None:
        problem = webhook.post(url, text)
        if problem:  # keep the old state: the same change is posted at the next evaluation
            return dg.SkipReason(problem)
    context.update_cursor(json.dumps({"runs_since": runs_since, "state": state.to_json()}))
    return dg.SkipReason("digest posted" if text else "nothing changed")
