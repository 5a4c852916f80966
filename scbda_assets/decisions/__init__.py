"""Decisions (SPEC §9b): forecast, calibrated stockout risk, scoring, what to order, alerts."""
