"""Asset checks of the hot store: schema, business rules, freshness (thin wiring over ``quality.rules``)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from scbda_assets.quality.rules import (
    BUSINESS_RULES,
    EVENT_TIME_FIELD,
    FACT_SCHEMAS,
    any_violation,
    quality_score,
    schema_violation,
)
from scbda_assets.resources import MongoResource, SettingsResource

FRESHNESS_LIMIT = dt.timedelta(minutes=2)
_EXAMPLES = 5


def _examples(collection, query: dict) -> list[str]:
    return [str(doc["_id"]) for doc in collection.find(query, {"_id": 1}).limit(_EXAMPLES)]


def _schema_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=name,
        name="schema_valid",
        description=f"Every {name} document has the SPEC §6 fields with the right BSON types. Malformed documents "
        "written from outside are counted here (and skipped by the KPIs, archived as they are).",
    )
    def check(mongo: MongoResource) -> dg.AssetCheckResult:
        collection = mongo.database()[name]
        total = collection.estimated_document_count()
        invalid = collection.count_documents(schema_violation(name))
        return dg.AssetCheckResult(
            passed=invalid == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "documents": total,
                "malformed": invalid,
                "data_quality_score": quality_score(total, invalid),
                "examples (_id)": dg.MetadataValue.json(_examples(collection, schema_violation(name))),
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
        collection = mongo.database()[name]
        counts = {rule.name: collection.count_documents(rule.violation) for rule in rules}
        total = collection.estimated_document_count()
        invalid = collection.count_documents(any_violation(name)) if name in FACT_SCHEMAS else sum(counts.values())
        return dg.AssetCheckResult(
            passed=sum(counts.values()) == 0,
            metadata={
                **{f"violations: {rule}": count for rule, count in counts.items()},
                "documents": total,
                "data_quality_score": quality_score(total, invalid),
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
    _archive_check(f"{collection.removesuffix('_fact')}_archive", collection)
    for collection in ("orders_fact", "shipments_fact", "inventory_fact")
]
