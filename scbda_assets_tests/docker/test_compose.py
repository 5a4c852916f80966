"""docker/docker-compose.yml, checked by reading it (no Docker engine needed): services, settings, secrets,
ports, health, start order, memory and image pins (SPEC §12)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from scbda_assets.settings import ConfigError, Settings, VARIABLE_NAMES
from scbda_assets_tests.docker import compose_model
from scbda_assets_tests.docker.compose_model import (
    command_strings,
    command_text,
    environment,
    is_one_shot,
    memory_bytes,
    references,
)

EXPECTED_SERVICES = {
    "mongodb", "mongodb-2", "mongodb-3", "mongo-rs-init", "redis", "postgres",
    "namenode", "datanode", "hdfs-init",
    "spark-master", "spark-worker", "spark-connect",
    "dagster-code-server", "dagster-webserver", "dagster-daemon",
    "dashboard",
}
DAGSTER_SERVICES = ("dagster-code-server", "dagster-webserver", "dagster-daemon")
PIPELINE_SERVICE = "dagster-code-server"  # imports the code and runs every run; the webserver and daemon do neither
REQUIRED_SCBDA = {"SCBDA_MONGO_URI", "SCBDA_REDIS_URL", "SCBDA_SPARK_REMOTE", "SCBDA_ARCHIVE_URI"}
PUBLISHED_UIS = {3000: "dagster-webserver", 8501: "dashboard"}
MEMORY_BUDGET = 12 * 1024**3  # a 16 GB laptop keeps ~4 GB for itself
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(?<!PREFIX)_KEY$", re.IGNORECASE)
VALID_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def test_exact_service_set(services):
    assert set(services) == EXPECTED_SERVICES


# ------------------------------------------------------------------ SCBDA_* settings match the code


def test_every_scbda_variable_set_is_one_the_code_reads(services):
    for name, service in services.items():
        unknown = {key for key in environment(service) if key.startswith("SCBDA_")} - VARIABLE_NAMES
        assert not unknown, f"{name} sets {sorted(unknown)}, which scbda_assets.settings does not read"


def test_the_code_server_gets_every_connection_setting(services):
    env = environment(services[PIPELINE_SERVICE])
    assert REQUIRED_SCBDA <= set(env), f"{PIPELINE_SERVICE} lacks {sorted(REQUIRED_SCBDA - set(env))}"


def test_code_server_settings_parse_to_the_stack_endpoints(services, env_example):
    settings = Settings.from_env(environment(services[PIPELINE_SERVICE]))
    assert settings.mongo_uri == (
        f"mongodb://{env_example['MONGO_APP_USER']}:{env_example['MONGO_APP_PASSWORD']}"
        "@mongodb:27017,mongodb-2:27017,mongodb-3:27017/?authSource=admin&replicaSet=scbda-rs&w=majority"
        "&wtimeoutMS=30000&retryWrites=true&retryReads=true&readConcernLevel=majority"
    )
    assert settings.redis_url == f"redis://:{env_example['REDIS_PASSWORD']}@redis:6379/0"
    assert settings.spark_remote == "sc://spark-connect:15002"
    assert settings.archive_uri == "hdfs://namenode:8020/supply_chain_archive"
    assert settings.mongo_db == env_example["SCBDA_MONGO_DB"]


def test_dashboard_settings_parse_and_reach_redis_only(services, env_example):
    env = environment(services["dashboard"])
    settings = Settings.from_env(env)
    assert settings.redis_url == f"redis://:{env_example['REDIS_PASSWORD']}@redis:6379/0"
    assert "SCBDA_MONGO_URI" not in env and "SCBDA_SPARK_REMOTE" not in env


def test_settings_reject_a_misspelt_variable_so_the_name_check_has_teeth():
    with pytest.raises(ConfigError, match="SCBDA_MONGO_URL"):
        Settings.from_env({"SCBDA_MONGO_URL": "mongodb://mongodb:27017"})


def test_mongo_database_is_the_one_the_app_user_may_write(services):
    app_db = environment(services["mongodb"])["MONGO_APP_DB"]
    assert environment(services[PIPELINE_SERVICE])["SCBDA_MONGO_DB"] == app_db


def test_archive_root_is_the_directory_hdfs_init_creates_for_spark(services):
    script = command_text(services["hdfs-init"])
    archive_path = "/supply_chain_archive"
    assert environment(services["dagster-code-server"])["SCBDA_ARCHIVE_URI"].endswith(archive_path)
    assert f"-mkdir -p {archive_path}" in script
    owner = environment(services["spark-connect"])["HADOOP_USER_NAME"]
    assert f"-chown {owner}:" in script
    assert environment(services["spark-worker"])["HADOOP_USER_NAME"] == owner


# ------------------------------------------------------------------ secrets


def _secret_variables(env_example) -> set[str]:
    return {name for name in env_example if SECRET_NAME.search(name)}


def test_example_env_documents_secrets_with_placeholders_only(env_example):
    secrets = _secret_variables(env_example)
    assert {"MONGO_ROOT_PASSWORD", "MONGO_APP_PASSWORD", "REDIS_PASSWORD", "POSTGRES_PASSWORD"} <= secrets
    for name in secrets:
        assert env_example[name].startswith("change-me"), f"{name} in .env.example must be a change-me placeholder"


def test_password_values_are_required_references_never_literals(compose_raw, env_example):
    for name, service in compose_raw["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (
                    f"{name}: {key} must be a required ${{VAR:?message}} reference, not {value!r}"
                )


def test_credentials_inside_urls_are_references(compose_raw):
    userinfo = re.compile(r"://([^/@\s]*)@")
    found = 0
    for name, service in compose_raw["services"].items():
        for key, value in environment(service).items():
            # Each ${...} reference (whose message may hold '/' or spaces) becomes one opaque token.
            masked = compose_model.mask_references(value, "REF")
            for credentials in userinfo.findall(masked):
                found += 1
                for part in credentials.split(":"):
                    assert part in ("", "REF"), f"{name}: {key} has a literal credential in its URL: {part!r}"
    assert found >= 2, "the Mongo and Redis URLs carry credentials; the check must have seen them"


def test_no_placeholder_or_secret_value_appears_in_the_compose_file(compose_raw, env_example):
    text = "\n".join(compose_model.all_strings(compose_raw))
    for name in _secret_variables(env_example):
        assert env_example[name] not in text, f"the compose file contains the value of {name}"
    assert "change-me" not in text


def test_no_secret_is_interpolated_into_a_command_line(compose_raw, env_example):
    """Compose would paste a ${SECRET} into argv (visible in `ps`); a shell reads $$SECRET from the env instead."""
    secrets = _secret_variables(env_example)
    for name, service in compose_raw["services"].items():
        for argument in command_strings(service):
            leaked = {ref for ref, _ in references(argument)} & secrets
            assert not leaked, f"{name}: {sorted(leaked)} would be on a command line"


def test_redis_password_reaches_redis_through_a_file_and_the_environment(compose_raw):
    redis = compose_raw["services"]["redis"]
    script = command_text(redis)
    assert "requirepass" in script and "$$REDIS_PASSWORD" in script and "--requirepass" not in script
    assert "REDISCLI_AUTH" in " ".join(command_strings({"healthcheck": redis["healthcheck"]}))
    assert " -a " not in script


def test_every_referenced_variable_is_documented_in_the_example(compose_raw, env_example):
    text = "\n".join(compose_model.all_strings(compose_raw))
    referenced = {name for name, _ in references(text)}
    assert referenced, "the compose file takes its settings from the env file"
    assert referenced <= set(env_example), f"undocumented: {sorted(referenced - set(env_example))}"
    unused = set(env_example) - referenced - {"COMPOSE_PROJECT_NAME"}
    assert not unused, f".env.example documents variables the stack never reads: {sorted(unused)}"


def test_every_example_variable_has_a_comment(env_example):
    lines = compose_model.ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = lines[:index]
            while above and not above[-1].startswith("#"):
                above.pop()  # a group of related variables shares one comment
            assert above and above[-1].startswith("#"), f"no comment above {line.split('=')[0]}"


def test_missing_secret_stops_interpolation_with_its_name(compose_raw, env_example):
    env = {k: v for k, v in env_example.items() if k != "REDIS_PASSWORD"}
    with pytest.raises(compose_model.MissingVariable, match="REDIS_PASSWORD"):
        compose_model.interpolate(compose_raw, env)


def test_real_env_file_is_git_ignored():
    git = shutil.which("git")
    assert git, "git is needed to check the ignore rules"
    result = subprocess.run([git, "check-ignore", "-q", "docker/.env"], cwd=compose_model.REPO_ROOT)
    assert result.returncode == 0, "docker/.env must be ignored by git (root .gitignore pattern .env)"
    example = subprocess.run([git, "check-ignore", "-q", "docker/.env.example"], cwd=compose_model.REPO_ROOT)
    assert example.returncode == 1, "docker/.env.example must be committable"


# ------------------------------------------------------------------ network exposure


def _published(service) -> list[tuple[str, int, int]]:
    out = []
    for port in service.get("ports") or []:
        assert isinstance(port, str), "ports use the short HOST_IP:HOST:CONTAINER form"
        parts = port.split("/")[0].split(":")
        assert len(parts) == 3, f"published port without a host address (binds 0.0.0.0): {port!r}"
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def test_only_the_two_uis_are_published_on_localhost(services):
    published = {}
    for name, service in services.items():
        for host_ip, host_port, container_port in _published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
            published[container_port] = name
            assert host_port == container_port  # with the example env's default ports
    assert published == PUBLISHED_UIS


def test_no_service_uses_host_networking(services):
    for name, service in services.items():
        assert service.get("network_mode") != "host", name


# ------------------------------------------------------------------ health and start order


def test_every_long_running_service_has_a_healthcheck(services):
    long_running = [name for name, service in services.items() if not is_one_shot(service)]
    one_shots = {name for name, service in services.items() if is_one_shot(service)}
    assert one_shots == {"hdfs-init", "mongo-rs-init"}
    assert len(long_running) == len(EXPECTED_SERVICES) - len(one_shots)
    for name in long_running:
        check = services[name].get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name


def _dependencies(service) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def test_dependencies_exist_with_valid_conditions(services):
    for name, service in services.items():
        for dependency, condition in _dependencies(service).items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            assert condition in VALID_CONDITIONS, f"{name} -> {dependency}: {condition}"
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{dependency} has no healthcheck to wait for"
            if condition == "service_completed_successfully":
                assert is_one_shot(services[dependency]), f"{dependency} never completes"


def test_dependency_graph_has_no_cycle(services):
    graph = {name: set(_dependencies(service)) for name, service in services.items()}
    order: list[str] = []
    while graph:
        ready = sorted(name for name, deps in graph.items() if not deps - set(order))
        assert ready, f"dependency cycle among {sorted(graph)}"
        order += ready
        for name in ready:
            del graph[name]
    assert order.index("hdfs-init") < order.index("spark-connect") < order.index("dagster-code-server")
    assert order.index("dagster-code-server") < order.index("dagster-daemon")


def test_code_server_waits_for_every_backend_to_be_ready(services):
    deps = _dependencies(services["dagster-code-server"])
    for store in ("mongodb", "redis", "postgres", "spark-connect"):
        assert deps.get(store) == "service_healthy", store
    assert deps.get("hdfs-init") == "service_completed_successfully"
    assert deps.get("mongo-rs-init") == "service_completed_successfully"


def test_exactly_one_dagster_daemon(services):
    daemons = [name for name, service in services.items() if "dagster-daemon run" in command_text(service)]
    assert daemons == ["dagster-daemon"]
    daemon = services["dagster-daemon"]
    assert daemon.get("container_name"), "a fixed container name makes `--scale dagster-daemon=2` fail"
    assert (daemon.get("deploy") or {}).get("replicas", 1) == 1
    assert "scale" not in daemon


def test_spark_worker_can_be_scaled(services):
    worker = services["spark-worker"]
    assert "container_name" not in worker and "hostname" not in worker and not worker.get("ports")


# ------------------------------------------------------------------ memory


def test_every_service_has_a_memory_limit_within_the_laptop_budget(services):
    limits = {}
    for name, service in services.items():
        limit = service.get("mem_limit") or ((service.get("deploy") or {}).get("resources") or {}).get(
            "limits", {}).get("memory")
        assert limit, f"{name} has no memory limit"
        limits[name] = memory_bytes(limit)
    assert sum(limits.values()) <= MEMORY_BUDGET, f"{sum(limits.values()) / 1024**3:.1f} GiB"
    assert all(limit >= 256 * 1024**2 for limit in limits.values())


def test_jvm_heaps_fit_inside_their_containers(services):
    def limit(name):
        return memory_bytes(services[name]["mem_limit"])

    for name in ("namenode", "datanode", "hdfs-init"):
        assert memory_bytes(environment(services[name])["HADOOP_HEAPSIZE_MAX"]) < limit(name), name
    worker = environment(services["spark-worker"])
    assert memory_bytes(worker["SPARK_WORKER_MEMORY"]) + memory_bytes(worker["SPARK_DAEMON_MEMORY"]) < limit(
        "spark-worker")
    assert memory_bytes(environment(services["spark-master"])["SPARK_DAEMON_MEMORY"]) < limit("spark-master")
    connect = command_strings(services["spark-connect"])
    driver = memory_bytes(connect[connect.index("--driver-memory") + 1])
    # Spark's launcher gives the Connect server SPARK_DAEMON_MEMORY when set, ahead of --driver-memory.
    daemon_memory = environment(services["spark-connect"]).get("SPARK_DAEMON_MEMORY")
    assert daemon_memory is None or memory_bytes(daemon_memory) == driver
    assert 512 * 1024**2 <= driver < limit("spark-connect")  # Spark refuses a driver below ~450 MB
    executor = memory_bytes(_spark_defaults()["spark.executor.memory"])
    assert executor <= memory_bytes(worker["SPARK_WORKER_MEMORY"])
    for member in MONGO_MEMBERS:
        command = command_text(services[member]).split()
        cache = float(command[command.index("--wiredTigerCacheSizeGB") + 1]) * 1024**3
        assert cache < limit(member), member


# ------------------------------------------------------------------ MongoDB replica set

MONGO_MEMBERS = ("mongodb", "mongodb-2", "mongodb-3")


def test_mongodb_runs_as_a_three_member_replica_set_with_key_file_auth(services):
    for member in MONGO_MEMBERS:
        command = command_text(services[member])
        assert "--replSet scbda-rs" in command and "--keyFile /tmp/replica.key" in command, member
        assert services[member]["image"] == services["mongodb"]["image"]
        assert "MONGO_REPLICA_KEY" in environment(services[member])
    volumes = [services[member]["volumes"][0].split(":")[0] for member in MONGO_MEMBERS]
    assert len(set(volumes)) == 3  # each member its own data


def test_the_stack_initiates_the_replica_set_it_connects_to(services, env_example):
    init = services["mongo-rs-init"]
    assert all(_dependencies(init).get(m) == "service_healthy" for m in MONGO_MEMBERS)
    script = (compose_model.DOCKER_DIR / "mongo-replica" / "initiate-replica-set.js").read_text()
    assert "replSetInitiate" in script and '_id: "scbda-rs"' in script
    hosts = re.findall(r'host: "([\w-]+:\d+)"', script)
    settings = Settings.from_env(environment(services["dagster-code-server"]))
    uri_hosts = settings.mongo_uri.split("@", 1)[1].split("/", 1)[0].split(",")
    assert sorted(hosts) == sorted(uri_hosts) == sorted(f"{m}:27017" for m in MONGO_MEMBERS)
    for option in ("replicaSet=scbda-rs", "w=majority", "retryWrites=true", "readConcernLevel=majority"):
        assert option in settings.mongo_uri, option


def test_spark_connect_is_the_driver_of_the_spark_master(services):
    command = command_strings(services["spark-connect"])
    assert command[command.index("--master") + 1] == "spark://spark-master:7077"
    worker = command_strings(services["spark-worker"])
    assert "spark://spark-master:7077" in worker


def _spark_defaults() -> dict[str, str]:
    conf = {}
    for line in (compose_model.DOCKER_DIR / "spark-defaults.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    return conf


# ------------------------------------------------------------------ images


PINNED_TAG = re.compile(r"^(?P<repo>[a-z0-9./_-]+):(?P<tag>\d+\.\d+(\.\d+)?([.-][A-Za-z0-9.-]+)?)$")


def test_every_image_is_pinned_to_a_version(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image name"
        match = PINNED_TAG.match(image)
        assert match, f"{name}: image {image!r} is not pinned to a version tag"
        assert "latest" not in match["tag"]


def test_store_images_are_the_spec_versions(services):
    assert services["mongodb"]["image"].startswith("mongo:6.0.")
    assert services["redis"]["image"].startswith("redis:7.")
    assert services["postgres"]["image"].startswith("postgres:")


def test_built_images_start_from_pinned_bases(services):
    dockerfiles = {}
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (compose_model.DOCKER_DIR / build["context"]).resolve()
            dockerfiles[service["image"]] = context / build.get("dockerfile", "Dockerfile")
    assert len(dockerfiles) == 2  # the project image and the HDFS image
    for image, path in dockerfiles.items():
        bases = re.findall(r"^FROM\s+(\S+)", path.read_text(), re.MULTILINE)
        assert bases, path
        for base in bases:
            assert PINNED_TAG.match(base), f"{path.name}: base image {base!r} is not pinned"


def test_services_sharing_an_image_build_it_identically(services):
    builds: dict[str, list] = {}
    for service in services.values():
        if service.get("build"):
            builds.setdefault(service["image"], []).append(service["build"])
    for image, configs in builds.items():
        assert all(config == configs[0] for config in configs), image
    assert len(builds["scbda:0.1.0"]) == 7


# ------------------------------------------------------------------ Compose itself


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose binary not installed (Debian: apt-get install -y docker-compose); "
           "the pure checks above still ran",
)
class TestDockerComposeValidates:
    def _run(self, env_file, *args):
        return subprocess.run(
            ["docker-compose", "-f", str(compose_model.COMPOSE_FILE), "--env-file", str(env_file), "config", *args],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
        )

    def test_config_is_valid_with_the_example_env(self):
        result = self._run(compose_model.ENV_EXAMPLE, "-q")
        assert result.returncode == 0, result.stderr

    def test_compose_resolves_the_file_as_these_tests_read_it(self, services):
        result = self._run(compose_model.ENV_EXAMPLE)
        assert result.returncode == 0, result.stderr
        resolved = yaml.safe_load(result.stdout)["services"]
        assert set(resolved) == set(services)
        for name, service in services.items():
            assert environment(resolved[name]) == environment(service), name
            assert resolved[name]["image"] == service["image"], name

    def test_a_missing_secret_stops_compose_with_its_name(self, tmp_path, env_example):
        env_file = tmp_path / "partial.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example.items() if k != "MONGO_APP_PASSWORD"))
        result = self._run(env_file, "-q")
        assert result.returncode != 0
        assert "MONGO_APP_PASSWORD" in result.stderr
