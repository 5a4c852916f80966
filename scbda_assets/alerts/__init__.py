"""Alerts that reach people (SPEC §9b): one digest per change to a webhook."""
