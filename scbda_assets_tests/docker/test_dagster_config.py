"""docker/dagster.yaml and docker/workspace.yaml, validated by Dagster's own config schemas (no services)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
from dagster._core.workspace.load import location_origins_from_yaml_paths

from scbda_assets_tests.docker import compose_model
from scbda_assets_tests.docker.compose_model import command_strings, environment

DAGSTER_YAML = compose_model.DOCKER_DIR / "dagster.yaml"
WORKSPACE_YAML = compose_model.DOCKER_DIR / "workspace.yaml"
EMBEDDED_INSTANCE = compose_model.REPO_ROOT / "scbda_assets" / "dagster_instance.yaml"
DAGSTER_SERVICES = ("dagster-code-server", "dagster-webserver", "dagster-daemon")


def _env_blocks(node) -> set[str]:
    """Names of the environment variables a Dagster config reads through `{env: NAME}` blocks."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return {name for value in node.values() for name in _env_blocks(value)}
    if isinstance(node, list):
        return {name for value in node for name in _env_blocks(value)}
    return set()


@pytest.fixture
def instance_dir(tmp_path):
    shutil.copyfile(DAGSTER_YAML, tmp_path / "dagster.yaml")
    return tmp_path


@pytest.fixture
def dagster_env(services, monkeypatch) -> dict[str, str]:
    """The code server's DAGSTER_* environment (as compose sets it) in os.environ, where `env:` blocks look."""
    env = {k: v for k, v in environment(services["dagster-code-server"]).items() if k.startswith("DAGSTER_")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_instance_config_passes_dagsters_schema(instance_dir, dagster_env):
    config, custom_class = dagster_instance_config(str(instance_dir))
    assert custom_class is None
    assert config["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}
    assert config["run_queue"]["dequeue_interval_seconds"] == 1


def test_instance_config_resolves_credentials_from_the_environment(dagster_env):
    result = process_config(dagster_instance_config_schema(), yaml.safe_load(DAGSTER_YAML.read_text()))
    assert result.success, result.errors
    postgres = result.value["storage"]["postgres"]["postgres_db"]
    assert postgres["hostname"] == "postgres" == dagster_env["DAGSTER_PG_HOST"]
    assert postgres["username"] == dagster_env["DAGSTER_PG_USER"]
    assert postgres["password"] == dagster_env["DAGSTER_PG_PASSWORD"]
    assert postgres["db_name"] == dagster_env["DAGSTER_PG_DB"]


def test_schema_validation_has_teeth(tmp_path, dagster_env):
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    config["run_queue"]["dequeue_interval_seconds"] = "every second"
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_missing_credential_variable_fails_resolution(dagster_env, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    result = process_config(dagster_instance_config_schema(), yaml.safe_load(DAGSTER_YAML.read_text()))
    assert not result.success
    assert "DAGSTER_PG_PASSWORD" in " ".join(error.message for error in result.errors)


def test_postgres_storage_class_accepts_the_config_and_builds_the_url(dagster_env):
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    section = yaml.safe_load(DAGSTER_YAML.read_text())["storage"]["postgres"]
    result = process_config(DagsterPostgresStorage.config_type(), section)
    assert result.success, result.errors
    url = pg_url_from_config(result.value)
    user, password, db = (dagster_env[k] for k in ("DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"))
    assert url == f"postgresql://{user}:{password}@postgres:5432/{db}"


def test_instance_config_holds_no_literal_credentials():
    storage = yaml.safe_load(DAGSTER_YAML.read_text())["storage"]["postgres"]["postgres_db"]
    for field in ("username", "password", "hostname", "db_name"):
        assert isinstance(storage[field], dict) and set(storage[field]) == {"env"}, field


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
def test_every_dagster_service_provides_the_variables_the_instance_reads(services, name):
    needed = _env_blocks(yaml.safe_load(DAGSTER_YAML.read_text()))
    assert needed == {"DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"}
    env = environment(services[name])
    assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
    assert env["DAGSTER_HOME"] == "/opt/dagster/home"


def test_postgres_service_and_dagster_agree_on_credentials(services):
    postgres = environment(services["postgres"])
    dagster = environment(services["dagster-daemon"])
    assert dagster["DAGSTER_PG_USER"] == postgres["POSTGRES_USER"]
    assert dagster["DAGSTER_PG_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert dagster["DAGSTER_PG_DB"] == postgres["POSTGRES_DB"]


def test_run_queue_concurrency_and_retention_match_the_embedded_instance():
    docker = yaml.safe_load(DAGSTER_YAML.read_text())
    embedded = yaml.safe_load(EMBEDDED_INSTANCE.read_text())
    assert docker["run_queue"] == embedded["run_queue"]
    assert docker["concurrency"] == embedded["concurrency"]
    assert docker["retention"] == embedded["retention"]
    assert docker["telemetry"] == embedded["telemetry"] == {"enabled": False}
    assert docker["run_monitoring"]["enabled"] is embedded["run_monitoring"]["enabled"] is True


def test_each_pipeline_stage_runs_one_at_a_time_polled_every_second():
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    assert config["run_queue"]["dequeue_interval_seconds"] == 1
    limits = {(rule["key"], rule["value"]): rule["limit"] for rule in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    for stage in ("generator", "kpis", "archive", "history"):
        assert limits[("scbda/stage", stage)] == 1, stage  # KPI runs never overlap


def test_embedded_instance_queues_archive_pool_runs_one_at_a_time_with_run_monitoring(tmp_path):
    """The embedded instance file as a real DagsterInstance: pool `archive` limited to 1 run (run granularity: a UI
    materialization waits behind the sensor's run), the stage tag limits, run monitoring on."""
    from dagster import DagsterInstance

    from scbda_assets.archive.assets import ARCHIVE_POOL
    from scbda_assets.archive.definitions import defs

    shutil.copyfile(EMBEDDED_INSTANCE, tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        settings = instance.get_concurrency_config()
        assert settings.pool_config.default_pool_limit == 1
        assert settings.pool_config.pool_granularity.value == "run"
        limits = {(r["key"], r.get("value")): r["limit"] for r in settings.run_queue_config.tag_concurrency_limits}
        assert limits[("scbda/stage", "archive")] == 1
        assert settings.run_queue_config.max_concurrent_runs == 6
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 120
    assert all(asset.op.pool == ARCHIVE_POOL for asset in defs.assets)


# ------------------------------------------------------------------ workspace


def test_workspace_loads_with_dagsters_workspace_schema():
    origins = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])
    assert len(origins) == 1
    origin = origins[0]
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert (origin.host, origin.port, origin.location_name) == ("dagster-code-server", 4000, "scbda_assets")


def test_workspace_schema_rejects_a_broken_workspace(tmp_path):
    broken = tmp_path / "workspace.yaml"
    broken.write_text("load_from:\n  - grpc_server:\n      host: dagster-code-server\n      prot: 4000\n")
    with pytest.raises(DagsterInvalidConfigError):
        location_origins_from_yaml_paths([str(broken)])


def test_workspace_points_at_the_code_server_as_compose_starts_it(services):
    origin = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])[0]
    server = services["dagster-code-server"]
    argv = command_strings(server)
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == "scbda_assets.definitions"
    assert argv[argv.index("-a") + 1] == "defs"  # the module holds several Definitions objects (domain defs)
    assert argv[argv.index("-p") + 1] == str(origin.port)
    assert argv[argv.index("-h") + 1] == "0.0.0.0"  # reachable from the webserver and daemon containers
    assert argv[argv.index("--location-name") + 1] == origin.location_name
    assert server.get("hostname", "dagster-code-server") == origin.host
    assert str(origin.port) in " ".join(command_strings({"healthcheck": server["healthcheck"]}))


@pytest.mark.parametrize("name", ("dagster-webserver", "dagster-daemon"))
def test_webserver_and_daemon_load_the_workspace_file_baked_into_the_image(services, name):
    argv = command_strings(services[name])
    path = argv[argv.index("-w") + 1]
    assert path == "/opt/scbda/docker/workspace.yaml"
    dockerfile = (compose_model.DOCKER_DIR / "Dockerfile").read_text()
    assert "COPY docker/workspace.yaml ./docker/workspace.yaml" in dockerfile
    assert "WORKDIR /opt/scbda" in dockerfile


def test_code_location_loads_as_the_code_server_starts_it(services, tmp_path):
    """`dagster definitions validate` with the code server's module, attribute and environment (docker host names,
    nothing reachable): the location loads without touching a service."""
    argv = command_strings(services["dagster-code-server"])
    target = [argv[i + j] for i, arg in enumerate(argv) if arg in ("-m", "-a") for j in (0, 1)]
    env = {
        **environment(services["dagster-code-server"]),
        "SCBDA_HOME": str(tmp_path / "state"),  # /opt/scbda/state exists only in the image
        "DAGSTER_HOME": str(tmp_path),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", *target], cwd=compose_model.REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "scbda_assets" in result.stdout + result.stderr
