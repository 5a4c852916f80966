"""The plain-Python KPI reference now lives in the package (the chaos lane's checker uses it too)."""

from scbda_assets.chaos.reference import ORDER_FIELDS, SHIPMENT_FIELDS, reference_kpis, schema_ok  # noqa: F401
