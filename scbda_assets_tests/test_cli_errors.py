"""Expected failures of the `scbda` command: one line on stderr naming what was wrong, a non-zero exit, no
traceback — run as a real subprocess, as a person or a script would."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scbda_assets.services.process import free_port


def _scbda(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCBDA_")}
    return subprocess.run([sys.executable, "-m", "scbda_assets.cli", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def _assert_one_line(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("scbda: error: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"SCBDA_EVENTS_PER_MINUTE": "-1"}, ("SCBDA_EVENTS_PER_MINUTE", "expected events per minute > 0")),
        ({"SCBDA_MONGO_URI": "mongo-host:27017"}, ("SCBDA_MONGO_URI", "expected mongodb://HOST:PORT")),
        ({"SCBDA_SPARK_REMOTE": "yarn"}, ("SCBDA_SPARK_REMOTE", "sc://HOST:PORT")),
        ({"SCBDA_KPI_TTL": "100"}, ("unknown setting SCBDA_KPI_TTL", "SCBDA_KPI_TTL_SECONDS")),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, env, fragments):
    result = _scbda("services", "status", env={"SCBDA_HOME": str(tmp_path), **env})
    _assert_one_line(result, 2, *fragments)


@pytest.mark.parametrize(
    "command",
    [
        ("generate", "--minutes", "1", "--no-progress"),
        ("kpis",),
        ("archive", "--dry-run"),
    ],
)
def test_unreachable_mongodb_is_one_line_with_the_address_and_exit_3(tmp_path, command):
    port = free_port()  # nothing listens here
    env = {
        "SCBDA_HOME": str(tmp_path),
        "SCBDA_MONGO_URI": f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500",
        "SCBDA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SCBDA_SPARK_REMOTE": "local",
    }
    result = _scbda(*command, env=env)
    _assert_one_line(result, 3, f"127.0.0.1:{port}")


def test_bad_option_value_names_the_accepted_form(tmp_path):
    result = _scbda("generate", "--minutes", "5", "--end", "yesterday", env={"SCBDA_HOME": str(tmp_path)})
    _assert_one_line(result, 2, "--end", "'yesterday' is not a time: expected ISO 8601")
    result = _scbda("generate", "--minutes", "0", env={"SCBDA_HOME": str(tmp_path)})
    _assert_one_line(result, 2, "--minutes", "0")


@pytest.mark.parametrize("command", [("generate", "--minutes", "1", "--no-progress"), ("archive", "--status")])
def test_no_uri_and_no_embedded_server_says_how_to_start_one_and_starts_nothing(tmp_path, command):
    """A command only connects: without SCBDA_MONGO_URI it needs the embedded mongod the launcher started."""
    from scbda_assets.services import embedded_services
    from scbda_assets.settings import Settings

    env = {"SCBDA_HOME": str(tmp_path), "SCBDA_MONGO_PORT": str(free_port()), "SCBDA_REDIS_PORT": str(free_port()),
           "SCBDA_SPARK_REMOTE": "local"}
    result = _scbda(*command, env=env)
    _assert_one_line(result, 3, "SCBDA_MONGO_URI", "`scbda services up`")
    assert all(service.status() is None for service, _ in embedded_services(Settings.from_env(env)))
