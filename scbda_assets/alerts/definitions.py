"""alerts domain wiring: the webhook digest sensor."""

import dagster as dg

from scbda_assets.alerts.sensors import alert_webhook_sensor

defs = dg.Definitions(sensors=[alert_webhook_sensor])
