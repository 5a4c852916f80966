"""SCBDA: supply-chain big-data analytics as a Dagster asset graph (the Dagster code location)."""
