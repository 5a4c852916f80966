"""The fault-injection lane (`scbda chaos`, SPEC §14): a seeded schedule of faults against the whole pipeline, and
an invariant checker run after each fault and at the end. Pure parts (schedule, invariants, reference, report) are
free of Dagster and services; ``collect`` reads the stores, ``faults`` injects, ``lane`` runs it all."""
