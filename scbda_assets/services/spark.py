"""Embedded Spark Connect server, started from the pyspark package's own `sbin/start-connect-server.sh`.

local[2] master, bound to 127.0.0.1, 4 shuffle partitions (200 makes a small join 4x slower on 2 cores).
A warm server turns the 7-10 s cold SparkSession of every run into ~1 s.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from scbda_assets.services.embedded import EmbeddedService
from scbda_assets.services.java import java_home
from scbda_assets.services.process import ServiceError

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
IDENT = "scbda"

# The same session settings serve the Connect server and the in-process fallback session.
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


# The embedded HDFS (services/hdfs.py) has one DataNode: one replica per block, and no replacement DataNode sought
# when a write pipeline breaks (there is none; the write fails and the archive run is retried).
EMBEDDED_HDFS_CLIENT_CONF = {
    "spark.hadoop.dfs.replication": "1",
    "spark.hadoop.dfs.client.block.write.replace-datanode-on-failure.enable": "false",
}


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


# What the Connect server (a JVM that runs Python workers) needs from the caller's environment; nothing else goes in,
# so no SCBDA_* URI with a password, no cloud token, no unrelated variable reaches a process that runs client code.
SERVER_VARIABLES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                              "LD_LIBRARY_PATH", "ARROW_DEFAULT_MEMORY_POOL"})
SERVER_PREFIXES = ("SPARK_", "PYSPARK_", "HADOOP_", "LC_")


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` a Spark server process gets (SERVER_VARIABLES and SERVER_PREFIXES)."""
    return {key: value for key, value in environ.items() if key in SERVER_VARIABLES or key.startswith(SERVER_PREFIXES)}


def spark_env(home: Path) -> dict[str, str]:
    env = server_environment(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        JAVA_HOME=java_home(),
        SPARK_PID_DIR=str(home),
        SPARK_LOG_DIR=str(home),
        SPARK_IDENT_STRING=IDENT,
        SPARK_LOCAL_IP="127.0.0.1",
    )
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return env


class EmbeddedSpark(EmbeddedService):
    name = "spark-connect"
    port_setting = "SCBDA_SPARK_PORT"
    uri_setting = "SCBDA_SPARK_REMOTE"
    start_timeout = 120.0
    # What the Connect server runs its executors on; the cluster mode (services/cluster.py) points it at a master.
    master = "local[2]"

    @property
    def port(self) -> int:
        return self.settings.spark_port

    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def marker(self) -> str:
        return f"spark.connect.grpc.binding.port={self.port}"

    def extra_conf(self) -> dict[str, str]:
        return {}

    def launch(self) -> int:
        pid_file = self.dir / f"spark-{IDENT}-{SERVER_CLASS}-1.pid"
        pid_file.unlink(missing_ok=True)
        conf = {
            **SPARK_CONF,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            # Every run is a new client session; one left behind by a crashed run is closed after 5 idle minutes
            # (the 60-minute default let a day of minute runs exhaust the heap).
            "spark.connect.session.manager.defaultSessionTimeout": "5min",
            "spark.local.dir": str(self.dir / "tmp"),
            "spark.sql.warehouse.dir": str(self.dir / "warehouse"),
            **EMBEDDED_HDFS_CLIENT_CONF,
            **self.extra_conf(),
        }
        argv = [str(spark_home() / "sbin" / "start-connect-server.sh"), "--master", self.master, "--driver-memory", "1g"]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        with open(self.log_file, "ab") as log:
            result = subprocess.run(argv, env=spark_env(self.dir), stdout=log, stderr=subprocess.STDOUT, timeout=60)
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if result.returncode != 0 or not pid_file.exists():
            raise ServiceError(f"embedded Spark Connect server did not start; see {self.log_file} and {self.dir}")
        return int(pid_file.read_text().strip())
