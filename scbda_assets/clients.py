"""Plain MongoDB and Redis clients, checked with a ping: a store that cannot be reached is one
:class:`ServiceUnavailable` line naming the (redacted) address tried. No Dagster here (``resources.py`` wraps these)."""

from __future__ import annotations

import pymongo
import redis

from scbda_assets.errors import ServiceUnavailable, first_line
from scbda_assets.settings import Settings, redact


def mongo_client(uri: str, timeout_ms: int = 5000) -> pymongo.MongoClient:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        client.close()
        raise ServiceUnavailable(f"MongoDB unreachable at {redact(uri)}: {first_line(exc)}") from None
    return client


def redis_client(url: str, timeout_s: float = 5.0) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise ServiceUnavailable(f"Redis unreachable at {redact(url)}: {first_line(exc)}") from None
    return client


def settings_mongo_uri(settings: Settings) -> str:
    """SCBDA_MONGO_URI, or the running embedded mongod's (never started here)."""
    from scbda_assets.services import running_endpoint

    return running_endpoint(settings, "SCBDA_MONGO_URI")


def settings_redis_url(settings: Settings) -> str | None:
    """SCBDA_REDIS_URL, or the running embedded redis-server's; None when neither (never started here)."""
    if settings.redis_url:
        return settings.redis_url
    from scbda_assets.services import resolve_endpoints

    return resolve_endpoints(settings).get("SCBDA_REDIS_URL")
