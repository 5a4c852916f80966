"""The images of the docker stack (docker/Dockerfile, docker/hadoop.Dockerfile) and the files baked into them,
checked by reading them against the project they package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from scbda_assets import launcher
from scbda_assets.services.spark import SPARK_CONF
from scbda_assets_tests.docker import compose_model
from scbda_assets_tests.docker.compose_model import command_strings, environment

DOCKERFILE = compose_model.DOCKER_DIR / "Dockerfile"
HADOOP_DOCKERFILE = compose_model.DOCKER_DIR / "hadoop.Dockerfile"
DOCKERIGNORE = compose_model.DOCKER_DIR / "Dockerfile.dockerignore"
SPARK_DEFAULTS = compose_model.DOCKER_DIR / "spark-defaults.conf"
PINNED = re.compile(r"^[a-z0-9./_-]+:\d+\.\d+(\.\d+)?([.-][A-Za-z0-9.-]+)?$")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _spark_defaults() -> dict[str, str]:
    conf = {}
    for line in SPARK_DEFAULTS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    return conf


def test_every_base_and_copied_image_is_pinned():
    for path in (DOCKERFILE, HADOOP_DOCKERFILE):
        images = [args.split()[0] for kw, args in _instructions(path) if kw == "FROM"]
        images += re.findall(r"--from=(\S+)", path.read_text())
        assert images, path.name
        for image in images:
            assert PINNED.match(image), f"{path.name}: {image!r} is not pinned to a version"


def test_project_image_needs_no_native_hadoop_library_for_the_archive():
    """The archive's file operations use hdfs-native (pinned in pyproject): no libhdfs copy, no CLASSPATH."""
    text = DOCKERFILE.read_text()
    assert "libhdfs" not in text.replace("no libhdfs", "") and "CLASSPATH=" not in text
    dependencies = tomllib.loads((compose_model.REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dep.startswith("hdfs-native==") for dep in dependencies)


def test_project_image_has_java_17_and_the_docker_extra():
    runs = " ".join(args for kw, args in _instructions(DOCKERFILE) if kw == "RUN")
    assert "openjdk-17-jre-headless" in runs
    assert 'pip install ".[docker]"' in runs
    assert "import dagster_postgres" in runs  # the build fails loudly without Postgres storage
    base = _instructions(DOCKERFILE)[0][1]
    assert base.startswith("python:3.11.") and base.endswith("-bookworm")  # bookworm still ships openjdk-17
    python = tomllib.loads((compose_model.REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in python


def test_project_image_runs_as_an_unprivileged_user_under_tini():
    instructions = _instructions(DOCKERFILE)
    users = [args for kw, args in instructions if kw == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(kw == "ENTRYPOINT" and "tini" in args for kw, args in instructions)


def test_project_image_copies_only_named_paths_that_exist():
    copies = [args for kw, args in _instructions(DOCKERFILE) if kw == "COPY" and "--from=" not in args]
    assert copies
    for args in copies:
        parts = [part for part in args.split() if not part.startswith("--")]
        sources = parts[:-1]
        for source in sources:
            assert source not in (".", "./", "*"), "COPY of the whole context would take .env files along"
            assert (compose_model.REPO_ROOT / source).exists(), f"COPY source {source} does not exist"


def test_build_context_ignores_env_files_and_local_state():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {"**/.env", ".venv", ".scbda", ".git"} <= patterns


def test_spark_home_and_java_home_paths_match_the_base_image():
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for kw, args in _instructions(DOCKERFILE) if kw == "ENV")))
    assert env["SPARK_HOME"] == "/usr/local/lib/python3.11/site-packages/pyspark"
    assert env["JAVA_HOME"] == "/opt/java"
    assert env["SPARK_CONF_DIR"] == "/opt/scbda/docker/spark-conf"
    assert "COPY docker/spark-defaults.conf ./docker/spark-conf/spark-defaults.conf" in DOCKERFILE.read_text()
    assert env["DAGSTER_HOME"] == "/opt/dagster/home"


def test_spark_session_settings_match_the_embedded_server():
    defaults = _spark_defaults()
    shared = ("spark.sql.shuffle.partitions", "spark.default.parallelism", "spark.sql.session.timeZone",
              "spark.sql.catalogImplementation", "spark.sql.parquet.compression.codec",
              "spark.sql.sources.partitionOverwriteMode")
    for key in shared:
        assert defaults[key] == SPARK_CONF[key], key


def test_spark_connect_listens_where_the_code_expects_it(services):
    defaults = _spark_defaults()
    remote = environment(services["dagster-code-server"])["SCBDA_SPARK_REMOTE"]
    host, port = remote.removeprefix("sc://").split(":")
    assert defaults["spark.connect.grpc.binding.port"] == port
    assert defaults["spark.driver.host"] == host == services["spark-connect"]["hostname"]
    assert "127.0.0.1" not in defaults.values()  # executors and clients come from other containers
    connect = command_strings(services["spark-connect"])
    assert connect[0] == "start-connect-server.sh" and "--wait" in connect
    assert connect[connect.index("--master") + 1] == "spark://spark-master:7077"
    master = command_strings(services["spark-master"])
    assert master[master.index("--port") + 1] == "7077"


def test_dashboard_runs_the_same_app_as_the_embedded_mode(services):
    argv = command_strings(services["dashboard"])
    assert argv[:2] == ["streamlit", "run"]
    assert compose_model.REPO_ROOT / argv[2] == launcher.DASHBOARD_APP
    assert argv[argv.index("--server.port") + 1] == "8501"
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"


def test_mongo_app_user_is_created_from_the_environment_only(services):
    script = (compose_model.DOCKER_DIR / "mongo-init" / "create-app-user.js").read_text()
    for variable in ("MONGO_APP_USER", "MONGO_APP_PASSWORD", "MONGO_APP_DB"):
        assert f"process.env.{variable}" in script
        assert variable in environment(services["mongodb"])
    assert "readWrite" in script and "root" not in re.findall(r'role:\s*"(\w+)"', script)
    assert "./mongo-init:/docker-entrypoint-initdb.d:ro" in services["mongodb"]["volumes"]


@pytest.mark.parametrize("path", ["docker/hadoop.Dockerfile", "docker/Dockerfile"])
def test_named_volume_mount_points_are_prepared_for_the_image_user(path, services):
    """A new named volume copies the owner of its mount point from the image; a missing one becomes root's."""
    text = (compose_model.REPO_ROOT / path).read_text()
    image = "scbda-hadoop:3.4.1" if "hadoop" in path else "scbda:0.1.0"
    for service in services.values():
        if service["image"] != image:
            continue
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if not source.startswith("."):
                assert target in text, f"{path} does not create {target}"
