"""The `scbda` command: the same code paths as the Dagster assets, for people and scripts.

Expected failures (bad configuration, a service that cannot be reached, bad input) print one line to stderr and
exit non-zero: 2 for configuration or usage, 3 for an unavailable service. Summaries go to stdout as JSON.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shlex
import sys

import click
import pymongo

from scbda_assets.errors import ServiceUnavailable, first_line
from scbda_assets.services.process import ServiceError
from scbda_assets.settings import ConfigError, Settings, redact
from scbda_assets.timeutil import parse_iso

EXIT_CONFIG = 2
EXIT_SERVICE = 3
EXIT_BUSY = 4  # `scbda archive` / `scbda generate`: another writer holds the lease / the stream; nothing was changed


_PATH_ERRORS = (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError, FileNotFoundError)


def _fail(message: str, code: int) -> None:
    click.echo(f"scbda: error: {message}", err=True)
    sys.exit(code)


def _one_line_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), EXIT_CONFIG)
        except (ServiceError, ServiceUnavailable) as exc:
            _fail(str(exc), EXIT_SERVICE)
        except pymongo.errors.ConnectionFailure as exc:
            # A primary that steps down or a lost connection mid-command (a replica set's election): one line; the
            # command converges when run again (SPEC §4, §8).
            cause = first_line(exc).split(", full error:")[0]  # not the server's whole reply document
            _fail(f"MongoDB unavailable: {cause}; run the command again", EXIT_SERVICE)
        except _PATH_ERRORS as exc:
            # A path that cannot be used as configured (an archive root under a file, no permission): the
            # filesystem's own line names the path.
            _fail(f"filesystem error: {first_line(exc)}; SCBDA_ARCHIVE_URI (and SCBDA_HOME) must name folders "
                  "this user can write", EXIT_CONFIG)
        except OSError as exc:  # an I/O error, a storage service (HDFS) that does not answer
            _fail(f"storage error: {first_line(exc)}; run the command again once the storage answers", EXIT_SERVICE)
        except Exception as exc:
            # HDFS failing under Spark (a DataNode or NameNode gone mid-job) arrives as a Spark job error.
            from scbda_assets.archive.hdfs_client import failure_line

            line = failure_line(exc)
            if line is None:
                raise
            _fail(line, EXIT_SERVICE)

    return wrapper


def _settings() -> Settings:
    return Settings.from_env()


class IsoTime(click.ParamType):
    name = "ISO8601"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.datetime):
            return value
        try:
            parsed = parse_iso(value)  # a time without an offset is taken as UTC (all stored timestamps are UTC)
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail(f"{value!r} is not a time: expected ISO 8601, e.g. 2026-11-22T10:00:00Z", param, ctx)
        return parsed


def _print_json(summary: dict) -> None:
    click.echo(json.dumps(summary, indent=2, default=str))


class _OneLineErrors(click.Group):
    """Usage errors (a bad option value, a missing argument) as one line too, instead of click's usage block."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SCBDA: supply-chain analytics as a Dagster asset graph."""


@main.group()
def services() -> None:
    """Start, stop or inspect the embedded mongod, redis-server and Spark Connect server (and HDFS)."""


@services.command("up")
@click.option("--cluster", is_flag=True,
              help="Scale-out on this machine: Spark standalone master + 2 workers behind the Connect server, "
                   "and a 3-member MongoDB replica set (and HDFS, as --hdfs).")
@click.option("--hdfs", is_flag=True,
              help="Also a real HDFS NameNode + DataNode on 127.0.0.1 for the archive (prints SCBDA_ARCHIVE_URI).")
@_one_line_errors
def services_up_command(cluster, hdfs) -> None:
    """Start (or reuse) the embedded services; print shell-evaluable KEY=VALUE connection settings."""
    settings = _settings()
    if cluster:
        from scbda_assets.services.cluster import cluster_up

        endpoints, _ = cluster_up(settings)
    else:
        from scbda_assets.services import services_up

        endpoints, _ = services_up(settings)
    if cluster or hdfs:
        from scbda_assets.services.hdfs import hdfs_up

        endpoints["SCBDA_ARCHIVE_URI"], _ = hdfs_up(settings)
    for key, value in endpoints.items():
        click.echo(f"{key}={_shell_value(value)}")


def _shell_value(value: str) -> str:
    """Quoted only where the shell would split or run it: a replica set's URI has '&' (`eval "$(scbda services up)"`);
    plain URIs stay as they are (an assignment's value is never glob-expanded)."""
    return shlex.quote(value) if any(char in value for char in " \t\n&;|<>()$`\\\"'#") else value


@services.command("down")
@_one_line_errors
def services_down_command() -> None:
    """Stop the embedded services (and the scale-out cluster, and HDFS) started under $SCBDA_HOME, by PID."""
    from scbda_assets.services import services_down
    from scbda_assets.services.cluster import cluster_down
    from scbda_assets.services.hdfs import hdfs_down

    settings = _settings()
    stopped = cluster_down(settings) + services_down(settings) + hdfs_down(settings)
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@services.command("status")
@_one_line_errors
def services_status_command() -> None:
    """One line per service: running (pid, url), external (explicit URI), or stopped."""
    from scbda_assets.services import embedded_services

    settings = _settings()
    embedded = {env: service for service, env in embedded_services(settings)}
    for env, explicit in (
        ("SCBDA_MONGO_URI", settings.mongo_uri),
        ("SCBDA_REDIS_URL", settings.redis_url),
        ("SCBDA_SPARK_REMOTE", settings.spark_remote),
    ):
        if env not in embedded:
            click.echo(f"{env}: external {explicit}")
            continue
        running = embedded[env].status()
        state = f"running pid={running.pid} {redact(running.url)}" if running else "stopped"
        click.echo(f"{embedded[env].name}: {state}")
    from scbda_assets.services.cluster import cluster_status
    from scbda_assets.services.hdfs import hdfs_status

    for line in cluster_status(settings) + hdfs_status(settings):
        click.echo(line)


@main.command()
@click.option("--minutes", type=click.IntRange(min=1), required=True, help="Minutes of history to write.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Events (orders + shipments) per minute; default SCBDA_EVENTS_PER_MINUTE.")
@click.option("--end", type=IsoTime(), default=None, help="End of the history (default: now).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="RNG seed; default SCBDA_SEED.")
@click.option("--no-progress", is_flag=True, help="No progress bar (stderr).")
@_one_line_errors
def generate(minutes, rate, end, seed, no_progress) -> None:
    """Write N minutes of history ending at --end as fast as possible; print a JSON summary.

    Exit 4 ("busy"): another writer holds the stream (or took it over); nothing of this run remains."""
    from scbda_assets.generator.backfill import backfill
    from scbda_assets.generator.claim import ClaimLost, ClockMoved, StreamBusy

    try:
        summary = backfill(_settings(), minutes=minutes, rate=rate, end=end, seed=seed, progress=not no_progress)
    except (StreamBusy, ClockMoved, ClaimLost) as exc:
        _fail(str(exc), EXIT_BUSY)
    except KeyboardInterrupt:  # the interrupted batch was rolled back before this line (generator/stream.py)
        _fail("interrupted: nothing past the committed clock is left; run the command again to continue", 130)
    _print_json(summary)


@main.command()
@click.option("--as-of", type=IsoTime(), default=None, help="As-of time T (default: now).")
@_one_line_errors
def kpis(as_of) -> None:
    """Compute the five KPIs once, write them to Redis, print a JSON summary. An --as-of more than 5 minutes in the
    past never touches the live kpi:* keys: the summary then carries every payload (`payloads`)."""
    from scbda_assets.kpis.refresh import refresh_kpis_once

    _print_json(refresh_kpis_once(_settings(), as_of=as_of))


@main.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON array.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV.")
@_one_line_errors
def sql(query, as_json, as_csv) -> None:
    """Run QUERY (one Spark SQL SELECT) over hot + cold: views orders, shipments, inventory, orders_hourly,
    shipments_history. Read-only: any other statement is refused (exit 2). --json / --csv print every row; the
    table prints the first 10,000 and says so on stderr when there are more."""
    from scbda_assets.history.sql_views import MAX_ROWS, RefusedStatement, SqlError, format_table, run_sql

    if as_json and as_csv:
        _fail("--json and --csv exclude each other: pick one (default: a table)", EXIT_CONFIG)
    from scbda_assets.archive.storage import ArchiveStore
    from scbda_assets.kpis.refresh import SparkHandle, open_spark
    from scbda_assets.resources import open_resources

    complete = as_json or as_csv
    settings = _settings()
    with open_resources(settings) as resources:
        mongo, pyspark = resources["mongo"], resources["pyspark"]
        handle = SparkHandle(lambda: open_spark(pyspark.spark_config, lambda: pyspark.spark_session))
        try:
            db = mongo.database()
            table = handle.run(lambda spark: run_sql(spark, db, ArchiveStore(settings.archive_uri), query,
                                                     max_rows=None if complete else MAX_ROWS + 1))
        except RefusedStatement as exc:
            _fail(f"refused: {exc}; nothing was run", EXIT_CONFIG)
        except SqlError as exc:
            _fail(f"bad query: {exc}", EXIT_CONFIG)
        finally:
            if handle.reopened:
                handle.close()
    if as_json:
        click.echo(json.dumps(table.to_pylist(), indent=2, default=str))
    elif as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        for batch in table.to_batches(max_chunksize=10_000):  # bounded Python objects for a large result
            writer.writerows(["" if v is None else v for v in row.values()] for row in batch.to_pylist())
    else:
        if table.num_rows > MAX_ROWS:
            click.echo(f"scbda: showing the first {MAX_ROWS:,} rows; there are more (--csv or --json print all)",
                       err=True)
            table = table.slice(0, MAX_ROWS)
        click.echo(format_table(table))


@main.command()
@click.option("--dry-run", is_flag=True, help="Only print what would be archived.")
@click.option("--status", "show_status", is_flag=True,
              help="Print the archive's status (documents, bytes, event times, last runs, incomplete batches).")
@click.option("--retry-parked", is_flag=True, help="Retry the batches parked after failed recoveries.")
@_one_line_errors
def archive(dry_run, show_status, retry_parked) -> None:
    """Run the archival policy once; print what was (or would be) archived, or the archive's status.

    Exit 4 ("busy"): another archive writer holds the archive lease (or took it over: this run was fenced off);
    nothing was changed. Exit 3: an incomplete batch could not be finished (it is retried, parked after a few)."""
    from scbda_assets.archive.lease import ArchiveBusy, LeaseLost
    from scbda_assets.archive.cli import archive_once, status_once
    from scbda_assets.archive.protocol import RecoveryFailed

    if dry_run and show_status:
        _fail("--dry-run and --status cannot be combined: choose one", EXIT_CONFIG)
    if show_status:
        status, problem = status_once(_settings())
        if problem:
            click.echo(f"scbda: warning: {problem}", err=True)
        _print_json(status)
        return
    try:
        summary = archive_once(_settings(), dry_run=dry_run, retry_parked=retry_parked)
    except (ArchiveBusy, LeaseLost) as exc:
        _fail(str(exc), EXIT_BUSY)
    except RecoveryFailed as exc:
        _fail(str(exc), EXIT_SERVICE)
    _print_json(summary)


@main.command()
@_one_line_errors
def run() -> None:
    """Embedded services + `dagster dev` + dashboard (what `make run` does). Ctrl-C stops them."""
    from scbda_assets.launcher import run as run_everything

    sys.exit(run_everything(_settings()))


@main.command()
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=150000, show_default=True,
              help="Events per minute (default: 100x the default rate).")
@click.option("--threshold-mb", type=click.FloatRange(min=0, min_open=True), default=64, show_default=True,
              help="A low archive threshold, so archival runs during the soak.")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Also write the JSON report here.")
@_one_line_errors
def soak(minutes, rate, threshold_mb, report) -> None:
    """Run the whole pipeline for N minutes in a fresh state folder; print a JSON report."""
    from pathlib import Path

    from scbda_assets.soak import run_soak

    settings = _settings()
    summary = run_soak(minutes, rate, threshold_mb, base_home=settings.home)
    if report:
        Path(report).write_text(json.dumps(summary, indent=2, default=str))
    _print_json({k: v for k, v in summary.items() if k != "samples"})


@main.command()
@click.option("--minutes", type=click.FloatRange(min=1), required=True, help="Minutes of pipeline under faults.")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Seed of the fault schedule (and the stream).")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Also write the JSON report here.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=150000, show_default=True,
              help="Events per minute (default: 100x the default rate).")
@click.option("--threshold-mb", type=click.FloatRange(min=0, min_open=True), default=64, show_default=True,
              help="A low archive threshold, so archival runs every few minutes.")
@click.option("--settle-seconds", type=click.FloatRange(min=10), default=60, show_default=True,
              help="Pause between two faults (recovery, then the invariant check).")
@click.option("--faults", "kinds", default=None,
              help="Comma-separated fault kinds (default: all; see docs/chaos.md).")
@_one_line_errors
def chaos(minutes, seed, report, rate, threshold_mb, settle_seconds, kinds) -> None:
    """The whole pipeline under a seeded fault schedule; print the table fault | count | invariant violations.

    Exit 1 if an invariant was violated."""
    from pathlib import Path

    from scbda_assets.chaos.lane import LaneConfig, run_chaos
    from scbda_assets.chaos.schedule import FAULT_KINDS

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else None
    unknown = sorted(set(chosen or ()) - set(FAULT_KINDS))
    if unknown:
        _fail(f"--faults: unknown kind {unknown[0]}: accepted are {', '.join(FAULT_KINDS)}", EXIT_CONFIG)
    config = LaneConfig(minutes=minutes, seed=seed, rate=rate, threshold_mb=threshold_mb, settle_s=settle_seconds,
                        kinds=chosen)
    summary, table = run_chaos(config, base_home=_settings().home, echo=lambda line: click.echo(line, err=True))
    if report:
        Path(report).write_text(json.dumps(summary, indent=2, default=str))
    click.echo(table)
    click.echo(f"violations: {summary['violations']}  (report: {report or 'not written; use --report'})")
    sys.exit(1 if summary["violations"] else 0)


if __name__ == "__main__":
    main()
