"""Business ids counted across both stores, for the lanes that run the CLI against real services (cluster, hdfs)."""

from __future__ import annotations


def id_counts(expected: dict[str, list[str]], hot: dict[str, list[str]], cold: dict[str, list[str]],
              collections) -> dict[str, dict[str, int]]:
    """Per collection: expected, hot, cold, lost (expected but in neither store), unexpected, duplicated (extra
    copies, in one store or across both)."""
    report = {}
    for coll in collections:
        both = hot[coll] + cold[coll]
        report[coll] = {
            "expected": len(expected[coll]),
            "hot": len(hot[coll]),
            "cold": len(cold[coll]),
            "lost": len(set(expected[coll]) - set(both)),
            "unexpected": len(set(both) - set(expected[coll])),
            "duplicated": len(both) - len(set(both)),
        }
    return report
