"""Configuration: defaults, explicit URIs, and one clear line for every kind of bad value (SPEC §4)."""

from __future__ import annotations

import datetime as dt

import pytest

from scbda_assets.settings import VARIABLE_NAMES, ConfigError, Settings


def test_defaults(tmp_path):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path)})
    assert settings.mongo_uri is None and settings.redis_url is None and settings.spark_remote is None
    assert settings.mongo_db == "supply_chain"
    assert settings.archive_uri == (tmp_path / "archive").as_uri()
    assert settings.archive_threshold_mb == 300 and settings.archive_low_water == 0.7
    assert settings.archive_safety_minutes == 60
    assert settings.events_per_minute == 1500 and settings.kpi_ttl_seconds == 180
    assert settings.dagster_home == tmp_path / "dagster"


def test_explicit_values_round_trip(tmp_path):
    env = {
        "SCBDA_HOME": str(tmp_path),
        "SCBDA_MONGO_URI": "mongodb://user:secret@mongodb:27017/?authSource=admin",
        "SCBDA_REDIS_URL": "redis://:pw@redis:6379/0",
        "SCBDA_SPARK_REMOTE": "sc://spark-connect:15002",
        "SCBDA_ARCHIVE_URI": "hdfs://namenode:8020/supply_chain_archive/",
        "SCBDA_EVENTS_PER_MINUTE": "30",
        "SCBDA_KEY_PREFIX": "staging:",
        "SCBDA_RAMADAN": "2027-02-08/2027-03-09",
    }
    settings = Settings.from_env(env)
    assert settings.archive_uri == "hdfs://namenode:8020/supply_chain_archive"
    assert settings.ramadan == (dt.date(2027, 2, 8), dt.date(2027, 3, 9))
    assert settings.redis_key("kpi:last_update") == "staging:kpi:last_update"
    assert Settings.from_env(settings.to_env()) == settings


def test_plain_archive_path_becomes_file_uri(tmp_path):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_ARCHIVE_URI": str(tmp_path / "cold")})
    assert settings.archive_uri == (tmp_path / "cold").as_uri()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SCBDA_MONGO_URI", "localhost:27017", "expected mongodb://HOST:PORT"),
        ("SCBDA_MONGO_URI", "mongodb://", "expected mongodb://HOST:PORT"),
        ("SCBDA_REDIS_URL", "http://redis:6379", "expected redis://"),
        ("SCBDA_SPARK_REMOTE", "spark://master:7077", "expected sc://HOST:PORT"),
        ("SCBDA_ARCHIVE_URI", "s3://bucket/archive", "expected file:///ABSOLUTE/PATH"),
        ("SCBDA_ARCHIVE_URI", "relative/dir", "expected file:///ABSOLUTE/PATH"),
        ("SCBDA_EVENTS_PER_MINUTE", "-5", "expected events per minute > 0"),
        ("SCBDA_EVENTS_PER_MINUTE", "fast", "is not a number"),
        ("SCBDA_ARCHIVE_THRESHOLD_MB", "0", "expected megabytes > 0"),
        ("SCBDA_KPI_TTL_SECONDS", "30", "expected whole seconds > 60"),
        ("SCBDA_ARCHIVE_LOW_WATER", "1.5", "expected a fraction 0-1"),
        ("SCBDA_MONGO_PORT", "70000", "expected a TCP port"),
        ("SCBDA_RAMADAN", "2027-03-09/2027-02-08", "ends before it starts"),
        ("SCBDA_RAMADAN", "March", "expected YYYY-MM-DD/YYYY-MM-DD"),
        ("SCBDA_EVENTS_PER_MINUTE", "nan", "expected events per minute > 0"),
    ],
)
def test_bad_value_is_one_line_naming_variable_and_form(tmp_path, variable, value, expected):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SCBDA_HOME": str(tmp_path), variable: value})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}=")
    assert expected in message


def test_unknown_option_is_rejected_with_the_accepted_list(tmp_path):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_MONGO_URL": "mongodb://x"})
    message = str(err.value)
    assert "unknown setting SCBDA_MONGO_URL" in message and "SCBDA_MONGO_URI" in message


def test_password_is_not_echoed_in_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SCBDA_HOME": str(tmp_path), "SCBDA_MONGO_URI": "mongodb://u:hunter2@h:notaport"})
    assert "hunter2" not in str(err.value)


def test_every_variable_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = sorted(name for name in VARIABLE_NAMES if f"`{name}`" not in readme)
    assert missing == []


def test_decision_settings_defaults_and_a_warning_above_critical_is_refused():
    settings = Settings.from_env({})
    assert settings.stockout_thresholds() == {"critical_probability": 0.5, "warning_probability": 0.1}
    assert settings.service_level == 0.95 and settings.alert_webhook_url is None
    with pytest.raises(ConfigError, match="expected warning <= critical"):
        Settings.from_env({"SCBDA_STOCKOUT_WARNING_PROBABILITY": "0.6"})
    with pytest.raises(ConfigError, match="SCBDA_ALERT_WEBHOOK_URL"):
        Settings.from_env({"SCBDA_ALERT_WEBHOOK_URL": "ftp://x"})
