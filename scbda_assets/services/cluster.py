"""Scale-out on one machine: a Spark standalone cluster and a MongoDB replica set, all real, all on 127.0.0.1.

`scbda services up --cluster` starts
* a Spark standalone master and two workers (one core, 1 GB each) from the pyspark package's own launcher
  (`bin/spark-class org.apache.spark.deploy.master.Master` / `...deploy.worker.Worker`; the pip package has no sbin
  scripts for them), each in its own JVM;
* the Spark Connect server attached to that master (`--master spark://127.0.0.1:PORT`), so every query runs on
  executors in the workers' JVMs (one executor of one core per worker);
* a three-member MongoDB replica set from the same `mongod` binary as the embedded default, initiated here
  (`replSetInitiate`) and waited on until it has a primary and two secondaries;
* the embedded redis-server (Redis is a cache; it is not part of the scale-out).
Ports are picked free on the first start and remembered in `$SCBDA_HOME/cluster-ports.json` (the replica set's
configuration names its members by host:port, so they must not change). Every process is recorded by PID under
`$SCBDA_HOME/services/` and stopped by that PID.

The archive's staging files are written by the driver-side code to the archive root and read by the executors:
on one machine a local `file://` root is visible to every JVM; on several machines the root must be shared
(`hdfs://…`, see docs/scale-out.md).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
import urllib.request
from pathlib import Path

from scbda_assets.services.embedded import EmbeddedService
from scbda_assets.services.mongo import EmbeddedMongo
from scbda_assets.services.process import ServiceError, free_port, port_open
from scbda_assets.services.redis import EmbeddedRedis
from scbda_assets.services.spark import EmbeddedSpark, spark_env, spark_home
from scbda_assets.settings import Settings

REPLICA_SET = "scbda-rs"
MEMBERS = 3
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "768m"  # fits the worker's 1 GB with room for the JVM's own overhead
DAEMON_MEMORY = "256m"  # master and worker JVMs only schedule; they need little heap

# What makes every read-after-write path see its writes on a replica set: writes acknowledged by a majority (they
# survive an election), retried once on a new primary (inserts and single-document updates are retryable), and
# reads of majority-committed data from the primary (never a write an election may roll back).
MONGO_OPTIONS = (
    f"replicaSet={REPLICA_SET}&w=majority&wtimeoutMS=30000&retryWrites=true&retryReads=true"
    "&readConcernLevel=majority&readPreference=primary"
)


@dataclasses.dataclass(frozen=True)
class ClusterPorts:
    mongo: tuple[int, ...]
    master: int
    master_ui: int
    workers: tuple[int, ...]
    worker_uis: tuple[int, ...]
    connect: int
    driver_ui: int

    @classmethod
    def load_or_allocate(cls, settings: Settings) -> ClusterPorts:
        path = settings.home / "cluster-ports.json"
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        except (OSError, ValueError, TypeError):
            pass
        ports = cls(
            mongo=tuple(free_port() for _ in range(MEMBERS)),
            master=free_port(),
            master_ui=free_port(),
            workers=tuple(free_port() for _ in range(WORKERS)),
            worker_uis=tuple(free_port() for _ in range(WORKERS)),
            connect=free_port(),
            driver_ui=free_port(),
        )
        settings.home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(ports)))
        os.replace(tmp, path)
        return ports

    @classmethod
    def recorded(cls, settings: Settings) -> ClusterPorts | None:
        """The ports of a cluster started before under this $SCBDA_HOME (None if there never was one)."""
        if not (settings.home / "cluster-ports.json").exists():
            return None
        return cls.load_or_allocate(settings)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master}"

    @property
    def mongo_uri(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.mongo)
        return f"mongodb://{hosts}/?{MONGO_OPTIONS}"


class _ClusterService(EmbeddedService):
    """An embedded service whose port comes from the cluster's port table."""

    def __init__(self, settings: Settings, ports: ClusterPorts, port: int):
        self.ports = ports
        self._port = port
        super().__init__(settings)

    @property
    def port(self) -> int:
        return self._port


class ReplicaSetMember(_ClusterService, EmbeddedMongo):
    """The embedded mongod, as one member of the replica set (its port from the cluster's table)."""

    cache_size_gb = "0.25"  # three members on one machine
    # Auth on a replica set needs a key file between the members: the test cluster keeps loopback + a 0700 folder.
    require_auth = False

    def __init__(self, settings: Settings, ports: ClusterPorts, index: int, test_commands: bool = False):
        self.name = f"cluster-mongod-{index}"
        self.index = index
        self.test_commands = test_commands
        super().__init__(settings, ports, ports.mongo[index])

    def mongod_options(self) -> list[str]:
        options = ["--replSet", REPLICA_SET]
        if self.test_commands:
            # Only the test lane: failpoints hold one command in flight while the primary steps down.
            options += ["--setParameter", "enableTestCommands=1"]
        return options


class SparkMaster(_ClusterService):
    name = "cluster-spark-master"
    port_setting = "SCBDA_SPARK_PORT"
    uri_setting = "SCBDA_SPARK_REMOTE"

    def __init__(self, settings: Settings, ports: ClusterPorts):
        super().__init__(settings, ports, ports.master)

    def url(self) -> str:
        return self.ports.master_url

    def marker(self) -> str:
        return f"org.apache.spark.deploy.master.Master --host 127.0.0.1 --port {self.port}"

    def launch(self) -> int:
        argv = [
            str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ports.master_ui),
        ]
        return self.process.spawn(argv, self.log_file, env=_daemon_env(self.dir))


class SparkWorker(_ClusterService):
    port_setting = "SCBDA_SPARK_PORT"
    uri_setting = "SCBDA_SPARK_REMOTE"

    def __init__(self, settings: Settings, ports: ClusterPorts, index: int):
        self.name = f"cluster-spark-worker-{index}"
        self.index = index
        super().__init__(settings, ports, ports.workers[index])

    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def marker(self) -> str:
        return f"org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --port {self.port}"

    def launch(self) -> int:
        argv = [
            str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
            # --host and SPARK_LOCAL_IP: otherwise the worker advertises the machine's other address.
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ports.worker_uis[self.index]),
            "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(self.dir / "work"),
            self.ports.master_url,
        ]
        return self.process.spawn(argv, self.log_file, env=_daemon_env(self.dir))


class ClusterConnect(EmbeddedSpark):
    """The Spark Connect server as the driver of the standalone cluster: one executor per worker."""

    name = "cluster-spark-connect"

    def __init__(self, settings: Settings, ports: ClusterPorts):
        self.ports = ports
        self.master = ports.master_url
        super().__init__(settings)

    @property
    def port(self) -> int:
        return self.ports.connect

    def extra_conf(self) -> dict[str, str]:
        return {
            "spark.cores.max": str(WORKERS * WORKER_CORES),
            "spark.executor.cores": str(WORKER_CORES),
            "spark.executor.memory": EXECUTOR_MEMORY,
            # The driver's UI (REST API /api/v1) tells which executor ran how many tasks.
            "spark.ui.enabled": "true",
            "spark.ui.port": str(self.ports.driver_ui),
            "spark.port.maxRetries": "0",
        }


def _daemon_env(directory: Path) -> dict[str, str]:
    env = spark_env(directory)
    env.update(SPARK_DAEMON_MEMORY=DAEMON_MEMORY, SPARK_LOCAL_IP="127.0.0.1", SPARK_WORKER_DIR=str(directory / "work"))
    return env


@dataclasses.dataclass
class Cluster:
    settings: Settings
    ports: ClusterPorts
    members: list[ReplicaSetMember]
    master: SparkMaster
    workers: list[SparkWorker]
    connect: ClusterConnect
    redis: EmbeddedRedis | None

    @classmethod
    def of(cls, settings: Settings, ports: ClusterPorts | None = None, test_commands: bool = False) -> Cluster:
        ports = ports or ClusterPorts.load_or_allocate(settings)
        return cls(
            settings=settings,
            ports=ports,
            members=[ReplicaSetMember(settings, ports, i, test_commands) for i in range(MEMBERS)],
            master=SparkMaster(settings, ports),
            workers=[SparkWorker(settings, ports, i) for i in range(WORKERS)],
            connect=ClusterConnect(settings, ports),
            redis=EmbeddedRedis(settings) if settings.redis_url is None else None,
        )

    def services(self) -> list[EmbeddedService]:
        """Start order; stop in reverse (the driver first, the stores last)."""
        redis = [self.redis] if self.redis is not None else []
        return [*redis, *self.members, self.master, *self.workers, self.connect]

    def endpoints(self) -> dict[str, str]:
        redis_url = self.settings.redis_url
        if redis_url is None:
            running = self.redis.status()
            redis_url = running.url if running else self.redis.url()
        return {
            "SCBDA_HOME": str(self.settings.home),
            "SCBDA_MONGO_DB": self.settings.mongo_db,
            "SCBDA_MONGO_URI": self.ports.mongo_uri,
            "SCBDA_REDIS_URL": redis_url,
            "SCBDA_SPARK_REMOTE": self.connect.url(),
        }

    def up(self) -> list[EmbeddedService]:
        # Every process starts at once (JVM start-up dominates; workers and the driver retry the master until it
        # answers), then the replica set is initiated and the executors awaited.
        with concurrent.futures.ThreadPoolExecutor(len(self.services())) as pool:
            futures = {service: pool.submit(service.ensure) for service in self.services()}
            errors = []
            for future in futures.values():
                try:
                    future.result()
                except ServiceError as exc:
                    errors.append(str(exc))
        if errors:
            raise ServiceError(errors[0])
        started = [service for service, future in futures.items() if future.result()[1]]
        initiate_replica_set(self.ports)
        wait_for_workers(self.ports, WORKERS)
        wait_for_executors(self.ports, WORKERS)
        return started

    def down(self) -> list[str]:
        """Spark first (the driver releases its executors), then the stores; each group stopped in parallel."""
        spark = [self.connect, *self.workers, self.master]
        stores = [*self.members, *([self.redis] if self.redis else [])]
        stopped = []
        for group in (spark, stores):
            with concurrent.futures.ThreadPoolExecutor(len(group)) as pool:
                results = list(pool.map(lambda service: service.stop(), group))
            stopped += [service.name for service, was_running in zip(group, results) if was_running]
        return stopped


def cluster_up(settings: Settings, test_commands: bool = False) -> tuple[dict[str, str], list[EmbeddedService]]:
    """Start (or reuse) the cluster. Returns its connection settings and the services started now."""
    cluster = Cluster.of(settings, test_commands=test_commands)
    started = cluster.up()
    return cluster.endpoints(), started


def cluster_down(settings: Settings) -> list[str]:
    """Stop every cluster process recorded under $SCBDA_HOME, by PID (nothing if no cluster was ever started)."""
    ports = ClusterPorts.recorded(settings)
    if ports is None:
        return []
    cluster = Cluster.of(settings, ports)
    cluster.redis = None  # the embedded redis is the single-machine default's too: `services down` stops it
    return cluster.down()


def cluster_status(settings: Settings) -> list[str]:
    """One line per process, then the master's live workers and the replica set's members."""
    ports = ClusterPorts.recorded(settings)
    if ports is None:
        return []
    cluster = Cluster.of(settings, ports)
    cluster.redis = None
    lines = []
    for service in cluster.services():
        running = service.status()
        lines.append(f"{service.name}: " + (f"running pid={running.pid} {running.url}" if running else "stopped"))
    master = master_json(ports)
    if master is None:
        lines.append(f"spark master http://127.0.0.1:{ports.master_ui}: unreachable")
    else:
        lines.append(f"spark master {master.get('url')} ({master.get('status')}), web UI http://127.0.0.1:{ports.master_ui}")
        for worker in master.get("workers", []):
            lines.append(
                f"  worker {worker['id']} {worker['host']}:{worker['port']} {worker['state']} "
                f"cores {worker['coresused']}/{worker['cores']} memory {worker['memoryused']}/{worker['memory']} MB"
            )
        for app in master.get("activeapps", []):
            lines.append(f"  app {app['id']} {app['name']} {app['state']} cores {app['cores']}")
    for member in replica_set_members(ports):
        lines.append(f"  mongo {member['name']} {member['stateStr']} health={member.get('health')}")
    return lines


# ---- readiness -------------------------------------------------------------------------------------------------


def _admin_client(port: int):
    import pymongo

    return pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=5000, tz_aware=True
    )


def initiate_replica_set(ports: ClusterPorts, timeout: float = 90.0) -> None:
    """replSetInitiate once (a set already initiated is left alone), then wait for one primary and the secondaries."""
    import pymongo

    with _admin_client(ports.mongo[0]) as client:
        try:
            client.admin.command("replSetGetStatus")
        except pymongo.errors.OperationFailure as exc:
            if exc.code != 94:  # NotYetInitialized
                raise ServiceError(f"replica set {REPLICA_SET}: {str(exc).splitlines()[0]}") from None
            config = {
                "_id": REPLICA_SET,
                "members": [{"_id": i, "host": f"127.0.0.1:{port}"} for i, port in enumerate(ports.mongo)],
                # A new primary within ~2 s of losing the old one (default 10 s).
                "settings": {"electionTimeoutMillis": 2000},
            }
            client.admin.command("replSetInitiate", config)
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        states = sorted(member["stateStr"] for member in replica_set_members(ports))
        if states == ["PRIMARY"] + ["SECONDARY"] * (MEMBERS - 1):
            return
        time.sleep(0.3)
    raise ServiceError(f"replica set {REPLICA_SET} has no primary and {MEMBERS - 1} secondaries after {timeout:.0f} s: {states}")


def replica_set_members(ports: ClusterPorts) -> list[dict]:
    """replSetGetStatus's members, asked of the first member that answers (none when no member does)."""
    import pymongo

    for port in ports.mongo:
        if not port_open(port):
            continue
        try:
            with _admin_client(port) as client:
                return list(client.admin.command("replSetGetStatus")["members"])
        except pymongo.errors.PyMongoError:
            continue
    return []


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy


def _get_json(url: str, timeout: float = 5.0) -> dict | list | None:
    try:
        with _LOCAL.open(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def master_json(ports: ClusterPorts) -> dict | None:
    """The master web UI's /json: workers (state, cores used), active and completed applications."""
    return _get_json(f"http://127.0.0.1:{ports.master_ui}/json/")


def worker_json(ports: ClusterPorts, index: int) -> dict | None:
    """A worker web UI's /json: its running and finished executors (each with its application id)."""
    return _get_json(f"http://127.0.0.1:{ports.worker_uis[index]}/json/")


def driver_executors(ports: ClusterPorts) -> list[dict]:
    """The Connect server's executors, dead ones included, with how many tasks each ran (driver REST API)."""
    base = f"http://127.0.0.1:{ports.driver_ui}/api/v1/applications"
    for _ in range(3):  # a busy driver answers its UI late
        apps = _get_json(base, timeout=20) or []
        executors = _get_json(f"{base}/{apps[0]['id']}/allexecutors", timeout=20) if apps else None
        if executors:
            return executors
        time.sleep(1)
    return []


def _wait(condition, timeout: float, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise ServiceError(failure)


def alive_workers(ports: ClusterPorts) -> list[dict]:
    master = master_json(ports) or {}
    return [w for w in master.get("workers", []) if w.get("state") == "ALIVE"]


def wait_for_workers(ports: ClusterPorts, count: int, timeout: float = 60.0) -> None:
    _wait(
        lambda: len(alive_workers(ports)) >= count,
        timeout,
        f"Spark master {ports.master_url} has fewer than {count} live workers after {timeout:.0f} s; "
        f"see its web UI http://127.0.0.1:{ports.master_ui}",
    )


def wait_for_executors(ports: ClusterPorts, count: int, timeout: float = 90.0) -> None:
    """Every live worker runs one executor of the Connect server (its cores are in use)."""
    _wait(
        lambda: sum(1 for w in alive_workers(ports) if w.get("coresused", 0) > 0) >= count,
        timeout,
        f"the Spark Connect server has executors on fewer than {count} workers after {timeout:.0f} s; "
        f"see http://127.0.0.1:{ports.master_ui}",
    )
