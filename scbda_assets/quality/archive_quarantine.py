"""Asset check: no file of a collection's archive is quarantined (thin wiring over ``archive.quarantine``).

A quarantined file is out of every reader's way (the KPIs go on without its rows), but its rows exist nowhere else:
the check fails until an operator repairs it and puts it back (docs/archive.md, "Quarantine")."""

from __future__ import annotations

import dagster as dg

from scbda_assets.archive import quarantine
from scbda_assets.archive.storage import ArchiveStore
from scbda_assets.contract import SPECS
from scbda_assets.resources import SettingsResource


def quarantine_result(store: ArchiveStore, collection: str) -> dg.AssetCheckResult:
    entries = [e for e in quarantine.quarantined(store) if e["collection"] == collection]
    return dg.AssetCheckResult(
        passed=not entries,
        metadata={
            "quarantined_files": len(entries),
            "quarantined_bytes": sum(e["bytes"] or 0 for e in entries),
            "flagged_hours": dg.MetadataValue.json(sorted({e["hour"] for e in entries if e["hour"]})),
            "files": dg.MetadataValue.json([{k: e[k] for k in ("original", "quarantined_as", "reason")}
                                            for e in entries]),
        },
    )


def _quarantine_check(asset: str, collection: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="archive_nothing_quarantined",
        description=f"No {collection} archive file was found unreadable and moved to _quarantine/ (its rows are "
        "left out of every read until it is repaired and put back).",
    )
    def check(settings: SettingsResource) -> dg.AssetCheckResult:
        return quarantine_result(ArchiveStore(settings.get().archive_uri), collection)

    return check


QUARANTINE_CHECKS = [_quarantine_check(spec.asset, spec.collection) for spec in SPECS]
