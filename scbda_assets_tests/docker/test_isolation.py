"""docker/docker-compose.yml: who can reach whom (networks) and who holds which secret, read from the file.

Reachability is Compose's: two services reach each other when they share a network (a service without
``networks`` is on ``default``). What a service must reach is read from its own settings and commands (every
``<service>:<port>`` they name) and from the Dagster workspace.
"""

from __future__ import annotations

import re

import yaml

from scbda_assets_tests.docker import compose_model
from scbda_assets_tests.docker.compose_model import command_text, environment, references

# The secrets each service may hold: only those it uses. Anything else (the webserver and the daemon with the
# store passwords, the dashboard with MongoDB's) is a leak.
SECRETS_OF = {
    "mongodb": {"MONGO_REPLICA_KEY", "MONGO_ROOT_PASSWORD", "MONGO_APP_PASSWORD"},  # creates the app user
    "mongodb-2": {"MONGO_REPLICA_KEY"},
    "mongodb-3": {"MONGO_REPLICA_KEY"},
    "mongo-rs-init": {"MONGO_ROOT_PASSWORD"},
    "redis": {"REDIS_PASSWORD"},
    "postgres": {"POSTGRES_PASSWORD"},
    "dagster-code-server": {"MONGO_APP_PASSWORD", "REDIS_PASSWORD", "POSTGRES_PASSWORD"},
    "dagster-webserver": {"POSTGRES_PASSWORD"},
    "dagster-daemon": {"POSTGRES_PASSWORD"},
    "dashboard": {"REDIS_PASSWORD"},
}
SECRET_VARIABLES = {"MONGO_REPLICA_KEY", "MONGO_ROOT_PASSWORD", "MONGO_APP_PASSWORD", "REDIS_PASSWORD",
                    "POSTGRES_PASSWORD"}


def _networks(service) -> set[str]:
    networks = service.get("networks") or ["default"]
    return set(networks)


def _peers(services, name: str) -> set[str]:
    mine = _networks(services[name])
    return {other for other, service in services.items() if other != name and _networks(service) & mine}


def _named_hosts(services, name: str) -> set[str]:
    """The services ``name`` connects to: every ``<service>:<port>`` in its environment values and commands."""
    service = services[name]
    text = " ".join([*environment(service).values(), command_text(service)])
    hosts = {match for match in re.findall(r"([a-z][a-z0-9-]*):\d+", text) if match in services and match != name}
    if name in ("dagster-webserver", "dagster-daemon"):  # the workspace file they load
        workspace = yaml.safe_load((compose_model.DOCKER_DIR / "workspace.yaml").read_text())
        hosts |= {entry["grpc_server"]["host"] for entry in workspace["load_from"]}
    if "DAGSTER_PG_HOST" in environment(service):
        hosts.add(environment(service)["DAGSTER_PG_HOST"])
    return hosts


def test_the_dashboard_reaches_redis_only(services):
    assert _peers(services, "dashboard") == {"redis"}


def test_spark_connect_and_hdfs_are_not_reachable_from_the_viewer_facing_services(services):
    for viewer_facing in ("dashboard", "dagster-webserver"):
        assert not _peers(services, viewer_facing) & {"spark-connect", "spark-master", "namenode", "datanode",
                                                      "mongodb", "mongodb-2", "mongodb-3"}, viewer_facing


def test_every_service_reaches_every_host_it_connects_to(services):
    for name in services:
        missing = _named_hosts(services, name) - _peers(services, name)
        assert not missing, f"{name} names {sorted(missing)} but shares no network with them"


def test_the_network_split_has_teeth():
    """The checks above on a stack without networks (everyone on default): the dashboard reaches everything."""
    flat = {name: {key: value for key, value in service.items() if key != "networks"}
            for name, service in compose_model.load_raw()["services"].items()}
    assert "spark-connect" in _peers(flat, "dashboard")


def test_networks_are_declared_and_the_store_network_has_no_way_out(compose):
    used = {network for service in compose["services"].values() for network in _networks(service)}
    assert used == set(compose["networks"])
    assert compose["networks"]["backend"]["internal"] is True


def test_each_service_gets_only_the_secrets_it_uses(compose_raw):
    for name, service in compose_raw["services"].items():
        held = {ref for value in environment(service).values() for ref, _ in references(value)} & SECRET_VARIABLES
        assert held == SECRETS_OF.get(name, set()), f"{name} holds {sorted(held)}"


def test_redis_keeps_what_it_acknowledged_and_evicts_only_what_expires(compose_raw):
    script = command_text(compose_raw["services"]["redis"])
    config = re.search(r"printf '([^']*)'", script)[1].split("\\n")
    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy volatile-ttl"} <= set(config)
