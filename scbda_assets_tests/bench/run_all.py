"""`make bench`: run every benchmark module in this folder, print one table, write a JSON report.

A benchmark module is `bench_<name>.py` with ``run(ctx) -> list[dict]``; each row is
``{"benchmark", "metric", "value", "unit", "target"?, "note"?}``. ``ctx`` holds the running services
(one embedded stack for the whole run, so figures compared side by side share one server).
Benchmarks measure and report; they never fail on a slow figure (speed goals are not tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from scbda_assets.services import services_down, services_up
from scbda_assets.services.process import free_port
from scbda_assets.settings import Settings


def _modules(only: list[str] | None):
    here = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if info.name.startswith("bench_") and (not only or info.name.removeprefix("bench_") in only):
            yield importlib.import_module(f"{__package__}.{info.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="bench/report.json")
    parser.add_argument("--only", nargs="*", help="benchmark names (bench_<name>.py) to run")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="scbda-bench-"))
    env = {
        "SCBDA_HOME": str(home),
        "SCBDA_MONGO_PORT": str(free_port()),
        "SCBDA_REDIS_PORT": str(free_port()),
        "SCBDA_SPARK_PORT": str(free_port()),
    }
    settings = Settings.from_env(env)
    endpoints, _ = services_up(settings)
    os.environ.update(endpoints)
    rows: list[dict] = []
    errors: list[str] = []
    started = time.time()
    try:
        ctx = {"settings": Settings.from_env({**env, **endpoints}), "endpoints": endpoints, "home": home}
        for module in _modules(args.only):
            name = module.__name__.rsplit(".", 1)[-1]
            print(f"== {name}", flush=True)
            try:
                rows += module.run(ctx)
            except Exception:
                errors.append(f"{name}: {traceback.format_exc(limit=3)}")
                print(errors[-1], file=sys.stderr)
    finally:
        services_down(settings)
    _print_table(rows)
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": round(time.time() - started, 1),
        "results": rows,
        "errors": errors,
    }
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    print(f"\nreport: {args.report}")
    return 1 if errors else 0


def _print_table(rows: list[dict]) -> None:
    header = ("benchmark", "metric", "value", "unit", "target")
    table = [header] + [tuple(str(r.get(k, "")) for k in header) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
