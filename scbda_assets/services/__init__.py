"""Embedded real servers for one machine with no Docker: mongod, redis-server and a Spark Connect server.

An explicit SCBDA_* URI always wins: then nothing is started for that service (SPEC §4).
"""

from __future__ import annotations

from scbda_assets.errors import ServiceUnavailable
from scbda_assets.services.embedded import EmbeddedService
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import RunningService, ServiceError
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark
from scbda_assets.settings import Settings

__all__ = ["ServiceError", "RunningService", "embedded_services", "services_up", "services_down", "resolve_endpoints",
           "running_endpoint"]

# (service class, settings field that overrides it, environment variable it exports)
_SERVICES: tuple[tuple[type[EmbeddedService], str, str], ...] = (
    (EmbeddedMongo, "mongo_uri", "SCBDA_MONGO_URI"),
    (EmbeddedRedis, "redis_url", "SCBDA_REDIS_URL"),
    (EmbeddedSpark, "spark_remote", "SCBDA_SPARK_REMOTE"),
)


def embedded_services(settings: Settings) -> list[tuple[EmbeddedService, str]]:
    """The services this configuration runs locally (those without an explicit URI), with their env variable."""
    return [(cls(settings), env) for cls, field, env in _SERVICES if getattr(settings, field) is None]


def services_up(settings: Settings) -> tuple[dict[str, str], list[EmbeddedService]]:
    """Start (or reuse) every embedded service. Returns the connection settings and the services started now."""
    started = []
    for service, _ in embedded_services(settings):
        _, now = service.ensure()
        if now:
            started.append(service)
    return resolve_endpoints(settings), started


def services_down(settings: Settings) -> list[str]:
    """Stop the embedded services recorded under $SCBDA_HOME (Spark first, the stores last)."""
    return [service.name for service, _ in reversed(embedded_services(settings)) if service.stop()]


def resolve_endpoints(settings: Settings) -> dict[str, str]:
    """KEY=VALUE connection settings: explicit URIs as given, embedded ones from the running servers.

    Nothing is started here (the launcher does: `scbda run`, `scbda services up`). An embedded MongoDB or Redis that
    is not running has no entry; Spark without a Connect server configured or running is "local", an in-process
    session (SPEC §4).
    """
    endpoints = {"SCBDA_HOME": str(settings.home), "SCBDA_MONGO_DB": settings.mongo_db}
    for cls, field, env in _SERVICES:
        explicit = getattr(settings, field)
        if explicit is not None:
            endpoints[env] = explicit
            continue
        running = cls(settings).status()
        if running is not None:
            endpoints[env] = running.url
        elif cls is EmbeddedSpark:
            endpoints[env] = "local"
    return endpoints


def running_endpoint(settings: Settings, variable: str) -> str:
    """The URI of ``variable`` (SCBDA_MONGO_URI or SCBDA_REDIS_URL): the explicit one, else the embedded server's
    under $SCBDA_HOME, which must already run (:class:`ServiceUnavailable` with one line saying how to start it)."""
    endpoint = resolve_endpoints(settings).get(variable)
    if endpoint is None:
        name = next(cls.name for cls, _, env in _SERVICES if env == variable)
        raise ServiceUnavailable(
            f"no {variable} and no embedded {name} running under {settings.home}: start the services with "
            f"`scbda services up` (or `make run`), or set {variable}"
        )
    return endpoint
