"""SCBDA_* configuration: read from the environment once, validated, with one clear line per mistake.

An explicit URI always wins over the embedded service (SPEC §4); ``None`` for a URI means "embedded".
Unknown ``SCBDA_*`` variables are rejected so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values


class ConfigError(ValueError):
    """Bad configuration. ``str(error)`` is the one line shown to the user."""


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    mongo_uri: str | None
    mongo_db: str
    redis_url: str | None
    spark_remote: str | None
    archive_uri: str
    archive_threshold_mb: float
    archive_low_water: float
    archive_safety_minutes: int
    events_per_minute: float
    kpi_ttl_seconds: int
    key_prefix: str
    seed: int
    late_event_fraction: float
    catchup_max_minutes: int
    ramadan: tuple[dt.date, dt.date] | None
    mongo_port: int
    redis_port: int
    spark_port: int
    dagster_port: int
    dashboard_port: int
    seed_days: float
    archive_lease_seconds: float = 30.0
    archive_lease_wait_seconds: float = 10.0
    supplier_window_days: int = 30
    stockout_critical_probability: float = 0.5
    stockout_warning_probability: float = 0.1
    service_level: float = 0.95
    alert_webhook_url: str | None = None

    def stockout_thresholds(self) -> dict[str, float]:
        """The probability thresholds of the stockout KPI's severity (``compute_kpis(thresholds=...)``)."""
        return {"critical_probability": self.stockout_critical_probability,
                "warning_probability": self.stockout_warning_probability}

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def services_dir(self) -> Path:
        return self.home / "services"

    def redis_key(self, name: str) -> str:
        """Redis key with the optional deployment prefix (several deployments may share one Redis)."""
        return f"{self.key_prefix}{name}"

    def to_env(self) -> dict[str, str]:
        """The SCBDA_* variables that reproduce these settings (``from_env(to_env())`` is the identity)."""
        env = {}
        for name, (field, _, _) in _VARIABLES.items():
            value = getattr(self, field)
            if value is None:
                continue
            if field == "ramadan":
                value = f"{value[0].isoformat()}/{value[1].isoformat()}"
            env[name] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        if environ is None:
            # A .env file next to the working directory fills in what the environment does not say.
            for key, value in dotenv_values(".env").items():
                if value is not None:
                    env.setdefault(key, value)
        unknown = sorted(k for k in env if k.startswith("SCBDA_") and k not in _VARIABLES)
        if unknown:
            raise ConfigError(
                f"unknown setting {unknown[0]}: accepted SCBDA_* variables are {', '.join(sorted(_VARIABLES))}"
            )
        values = {}
        for name, (field, parse, default) in _VARIABLES.items():
            raw = env.get(name, "").strip()
            values[field] = parse(name, raw) if raw else default
        if values["stockout_warning_probability"] > values["stockout_critical_probability"]:
            raise ConfigError(
                f"SCBDA_STOCKOUT_WARNING_PROBABILITY={values['stockout_warning_probability']} is above "
                f"SCBDA_STOCKOUT_CRITICAL_PROBABILITY={values['stockout_critical_probability']}: expected warning <= "
                "critical")
        home = Path(values["home"] or ".scbda").expanduser().resolve()
        values["home"] = home
        if values["archive_uri"] is None:
            values["archive_uri"] = (home / "archive").as_uri()
        return cls(**values)


def _uri(schemes: tuple[str, ...], form: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        parsed = urlparse(raw)
        if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
            raise ConfigError(f"{name}={redact(raw)!r} is not a valid URI: expected {form}")
        if parsed.scheme in ("mongodb", "mongodb+srv"):
            from pymongo.uri_parser import parse_uri

            try:
                parse_uri(raw, connect_timeout=1) if parsed.scheme == "mongodb" else None
            except Exception as exc:  # pymongo raises several types for one meaning: unparsable
                raise ConfigError(f"{name}={redact(raw)!r} is not a valid URI ({exc}): expected {form}") from None
        return raw

    return parse


def redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


def _spark_remote(name: str, raw: str) -> str:
    if raw == "local":
        return raw
    parsed = urlparse(raw)
    if parsed.scheme != "sc" or not parsed.hostname or parsed.port is None:
        raise ConfigError(f"{name}={raw!r} is not valid: expected sc://HOST:PORT (Spark Connect) or 'local'")
    return raw


def _archive_uri(name: str, raw: str) -> str:
    if raw.startswith("/"):
        return Path(raw).resolve().as_uri()
    parsed = urlparse(raw)
    if parsed.scheme == "file" and parsed.path.startswith("/"):
        return raw.rstrip("/")
    if parsed.scheme == "hdfs" and parsed.netloc and parsed.path.startswith("/"):
        return raw.rstrip("/")
    raise ConfigError(
        f"{name}={raw!r} is not valid: expected file:///ABSOLUTE/PATH, an absolute path, or hdfs://NAMENODE:PORT/PATH"
    )


def _number(kind: type, low: float, high: float | None, form: str) -> Callable[[str, str], float]:
    def parse(name: str, raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number: expected {form}") from None
        if value < low or (high is not None and value > high) or value != value:
            raise ConfigError(f"{name}={raw!r} is out of range: expected {form}")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw


def _date_range(name: str, raw: str) -> tuple[dt.date, dt.date]:
    try:
        start, end = (dt.date.fromisoformat(part.strip()) for part in raw.split("/"))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not valid: expected YYYY-MM-DD/YYYY-MM-DD (first and last day)") from None
    if end < start:
        raise ConfigError(f"{name}={raw!r} ends before it starts: expected YYYY-MM-DD/YYYY-MM-DD")
    return start, end


_PORT = _number(int, 1, 65535, "a TCP port 1-65535")

# variable -> (field, parser, default). The README's configuration table lists the same.
_VARIABLES: dict[str, tuple[str, Callable, object]] = {
    "SCBDA_HOME": ("home", _text, None),
    "SCBDA_MONGO_URI": ("mongo_uri", _uri(("mongodb", "mongodb+srv"), "mongodb://HOST:PORT[/...]"), None),
    "SCBDA_MONGO_DB": ("mongo_db", _text, "supply_chain"),
    "SCBDA_REDIS_URL": ("redis_url", _uri(("redis", "rediss", "unix"), "redis://[:PASSWORD@]HOST:PORT[/DB]"), None),
    "SCBDA_SPARK_REMOTE": ("spark_remote", _spark_remote, None),
    "SCBDA_ARCHIVE_URI": ("archive_uri", _archive_uri, None),
    "SCBDA_ARCHIVE_THRESHOLD_MB": ("archive_threshold_mb", _number(float, 0.001, None, "megabytes > 0"), 300.0),
    "SCBDA_ARCHIVE_LOW_WATER": ("archive_low_water", _number(float, 0.0, 1.0, "a fraction 0-1"), 0.7),
    "SCBDA_ARCHIVE_SAFETY_MINUTES": ("archive_safety_minutes", _number(int, 16, None, "whole minutes >= 16"), 60),
    "SCBDA_ARCHIVE_LEASE_SECONDS": ("archive_lease_seconds", _number(float, 1.0, None, "seconds >= 1"), 30.0),
    "SCBDA_ARCHIVE_LEASE_WAIT_SECONDS": ("archive_lease_wait_seconds", _number(float, 0.0, None, "seconds >= 0"),
                                         10.0),
    "SCBDA_EVENTS_PER_MINUTE": ("events_per_minute", _number(float, 0.001, None, "events per minute > 0"), 1500.0),
    "SCBDA_KPI_TTL_SECONDS": ("kpi_ttl_seconds", _number(int, 61, None, "whole seconds > 60"), 180),
    "SCBDA_KEY_PREFIX": ("key_prefix", _text, ""),
    "SCBDA_SEED": ("seed", _number(int, 0, None, "an integer >= 0"), 42),
    "SCBDA_LATE_EVENT_FRACTION": ("late_event_fraction", _number(float, 0.0, 0.5, "a fraction 0-0.5"), 0.02),
    "SCBDA_CATCHUP_MAX_MINUTES": ("catchup_max_minutes", _number(int, 1, None, "whole minutes >= 1"), 60),
    "SCBDA_RAMADAN": ("ramadan", _date_range, None),
    "SCBDA_MONGO_PORT": ("mongo_port", _PORT, 27027),
    "SCBDA_REDIS_PORT": ("redis_port", _PORT, 6389),
    "SCBDA_SPARK_PORT": ("spark_port", _PORT, 15012),
    "SCBDA_DAGSTER_PORT": ("dagster_port", _PORT, 3000),
    "SCBDA_DASHBOARD_PORT": ("dashboard_port", _PORT, 8501),
    "SCBDA_SEED_DAYS": ("seed_days", _number(float, 0.0, 365.0, "days 0-365 (0: no seed; fractions allowed)"), 2.0),
    "SCBDA_SUPPLIER_WINDOW_DAYS": ("supplier_window_days", _number(int, 1, 30, "whole days 1-30"), 30),
    "SCBDA_STOCKOUT_CRITICAL_PROBABILITY": ("stockout_critical_probability",
                                            _number(float, 0.0, 1.0, "a probability 0-1"), 0.5),
    "SCBDA_STOCKOUT_WARNING_PROBABILITY": ("stockout_warning_probability",
                                           _number(float, 0.0, 1.0, "a probability 0-1"), 0.1),
    "SCBDA_SERVICE_LEVEL": ("service_level", _number(float, 0.5, 0.9999, "a probability 0.5-0.9999"), 0.95),
    "SCBDA_ALERT_WEBHOOK_URL": ("alert_webhook_url", _uri(("http", "https"), "http(s)://HOST[:PORT]/PATH"), None),
}

VARIABLE_NAMES = frozenset(_VARIABLES)
