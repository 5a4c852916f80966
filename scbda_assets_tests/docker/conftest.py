"""Fixtures of the docker tests: the compose file as written, and as Compose resolves it with the example env."""

from __future__ import annotations

import pytest

from scbda_assets_tests.docker import compose_model


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return compose_model.read_env_file(compose_model.ENV_EXAMPLE)


@pytest.fixture(scope="session")
def compose_raw() -> dict:
    """Anchors and merge keys resolved, ${...} references left as written."""
    return compose_model.load_raw()


@pytest.fixture(scope="session")
def compose(compose_raw, env_example) -> dict:
    """Interpolated with docker/.env.example, as `docker compose --env-file docker/.env.example config` would."""
    return compose_model.interpolate(compose_raw, env_example)


@pytest.fixture(scope="session")
def services(compose) -> dict:
    return compose["services"]
