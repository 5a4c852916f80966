"""Asset checks of the hot store: schema, business rules, freshness (thin wiring over ``quality.rules``)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.contract import SPECS
from scbda_assets.quality.rules import (
    BUSINESS_RULES,
    EVENT_TIME_FIELD,
    FACT_SCHEMAS,
    NEW_DOCUMENTS_WINDOW,
    new_documents,
    quality_score,
    schema_violation,
    violation_counts,
)
from scbda_assets.resources import MongoResource, SettingsResource

FRESHNESS_LIMIT = dt.timedelta(minutes=2)
_EXAMPLES = 5


def _examples(collection, query: dict) -> list[str]:
    return [str(doc["_id"]) for doc in collection.find(query, {"_id": 1}).limit(_EXAMPLES)]


def _scope(name: str) -> tuple[dict, str]:
    """What a check reads: the new documents of a fact collection; the whole (small) inventory_state."""
    if name not in FACT_SCHEMAS:
        return {}, "every document"
    minutes = int(NEW_DOCUMENTS_WINDOW.total_seconds() // 60)
    return new_documents(dt.datetime.now(dt.UTC)), f"inserted in the last {minutes} min, and any non-ObjectId _id"


def _schema_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=name,
        name="schema_valid",
        description=f"Every new {name} document has the fields of its column schema with the right BSON types. "
        "Malformed documents written from outside are counted here (and skipped by the KPIs, archived as they are).",
    )
    def check(mongo: MongoResource) -> dg.AssetCheckResult:
        collection = mongo.database()[name]
        scope, described = _scope(name)
        counts = violation_counts(collection, scope, rules=False)
        return dg.AssetCheckResult(
            passed=counts["malformed"] == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "documents": counts["documents"],
                "checked": described,
                "malformed": counts["malformed"],
                "data_quality_score": quality_score(counts["documents"], counts["malformed"]),
                "examples (_id)": dg.MetadataValue.json(
                    _examples(collection, {"$and": [scope, schema_violation(name)]})),
            },
        )

    return check


def _rules_check(name: str) -> dg.AssetChecksDefinition:
    rules = BUSINESS_RULES[name]

    @dg.asset_check(
        asset=name,
        name="business_rules",
        description="; ".join(rule.description for rule in rules),
    )
    def check(mongo: MongoResource) -> dg.AssetCheckResult:
        scope, described = _scope(name)
        counts = violation_counts(mongo.database()[name], scope)
        violations = {rule.name: counts[rule.name] for rule in rules}
        return dg.AssetCheckResult(
            passed=sum(violations.values()) == 0,
            metadata={
                **{f"violations: {rule}": count for rule, count in violations.items()},
                "documents": counts["documents"],
                "checked": described,
                "data_quality_score": quality_score(counts["documents"], counts["invalid"]),
            },
        )

    return check


@dg.asset_check(
    asset="orders_fact",
    name="events_fresh",
    description="The newest order is less than 2 minutes old (the live stream is flowing). Fails while the "
    "generator schedule is stopped or lagging.",
)
def orders_fresh(mongo: MongoResource) -> dg.AssetCheckResult:
    field = EVENT_TIME_FIELD["orders_fact"]
    newest = mongo.database()["orders_fact"].find_one(
        {field: {"$type": "date"}}, {field: 1}, sort=[(field, -1)]
    )
    if newest is None:
        return dg.AssetCheckResult(passed=False, metadata={"newest_event": "none: orders_fact is empty"})
    age = dt.datetime.now(dt.UTC) - newest[field]
    return dg.AssetCheckResult(
        passed=age < FRESHNESS_LIMIT,
        metadata={"newest_event": newest[field].isoformat(), "age_seconds": round(age.total_seconds(), 1)},
    )


HOT_STORE_CHECKS = [
    *[_schema_check(name) for name in FACT_SCHEMAS],
    *[_rules_check(name) for name in BUSINESS_RULES],
    orders_fresh,
]


def _archive_check(asset: str, collection: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="archive_verified",
        description=f"The 20 most recent complete archive batches of {collection}: files present, row counts equal "
        "the manifest, no id archived twice, no archived id left in MongoDB.",
    )
    def check(mongo: MongoResource, settings: SettingsResource) -> dg.AssetCheckResult:
        from scbda_assets.archive.storage import ArchiveStore
        from scbda_assets.quality.archive_verification import verify_recent_batches

        report = verify_recent_batches(ArchiveStore(settings.get().archive_uri), mongo.database(), collection)
        return dg.AssetCheckResult(
            passed=not report["problems"],
            metadata={
                "batches_checked": report["batches"],
                "records_checked": report["records"],
                "problems": dg.MetadataValue.json(report["problems"]),
            },
        )

    return check


ARCHIVE_CHECKS = [
    _archive_check(spec.asset, spec.collection) for spec in SPECS
]
