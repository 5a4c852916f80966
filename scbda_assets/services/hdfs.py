"""Embedded HDFS: a real NameNode and DataNode, each in its own JVM, from Hadoop's own jars (Maven Central, pinned in
hadoop/pom.xml; `make hadoop` resolves them into ~/.m2 and writes their classpath to hadoop/classpath.txt).

`scbda services up --hdfs` starts them on 127.0.0.1 (ports picked free on the first start and remembered in
`$SCBDA_HOME/hadoop/ports.json`, so the archive URI stays the same), formats the NameNode on the first start, and
waits until HDFS takes writes (one live DataNode, out of safe mode). Configuration, metadata, blocks and logs live
under `$SCBDA_HOME/hadoop/`. One DataNode, so replication 1; `dfs.datanode.synconclose` makes a closed file survive
a DataNode crash (the archive deletes from MongoDB only what is in closed files, SPEC §8.11).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from scbda_assets.services.embedded import EmbeddedService
from scbda_assets.services.java import java_home
from scbda_assets.services.process import ServiceError, free_port
from scbda_assets.settings import Settings

HADOOP_VERSION = "3.5.0"  # hadoop/pom.xml pins the same
ARCHIVE_PATH = "/scbda/archive"
NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
DAEMON_HEAP = "256m"
REPO_CLASSPATH_FILE = Path(__file__).resolve().parents[2] / "hadoop" / "classpath.txt"
INSTALL_HINT = (
    f"run `make hadoop` (Maven fetches Hadoop {HADOOP_VERSION}'s jars, ~65 MB, from Maven Central into ~/.m2; "
    "needs mvn and a JDK 17)"
)


def hadoop_classpath() -> str:
    """The jars of hadoop/pom.xml as a Java classpath, from the file `make hadoop` writes (SCBDA_HADOOP_CLASSPATH
    names another); every jar it lists must be present."""
    path = Path(os.environ.get("SCBDA_HADOOP_CLASSPATH") or REPO_CLASSPATH_FILE)
    try:
        jars = [jar for jar in path.read_text().strip().split(os.pathsep) if jar]
    except OSError:
        raise ServiceError(f"Hadoop's jars are not installed ({path} missing): {INSTALL_HINT}") from None
    missing = [jar for jar in jars if not Path(jar).is_file()]
    if not jars or missing:
        raise ServiceError(f"Hadoop's jars are incomplete ({(missing or [path])[0]} missing): {INSTALL_HINT}")
    return os.pathsep.join(jars)


@dataclasses.dataclass(frozen=True)
class HdfsPorts:
    namenode: int
    namenode_http: int
    datanode: int
    datanode_http: int
    datanode_ipc: int

    @classmethod
    def load_or_allocate(cls, directory: Path) -> HdfsPorts:
        path = directory / "ports.json"
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            pass
        ports = cls(*(free_port() for _ in dataclasses.fields(cls)))
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(ports)))
        os.replace(tmp, path)
        return ports


def hadoop_dir(settings: Settings) -> Path:
    return settings.home / "hadoop"


def write_config(directory: Path, ports: HdfsPorts) -> Path:
    """core-site.xml, hdfs-site.xml and log4j.properties in `<directory>/conf` (rewritten on every start)."""
    conf = directory / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    core = {"fs.defaultFS": f"hdfs://127.0.0.1:{ports.namenode}", "hadoop.tmp.dir": str(directory / "tmp")}
    hdfs = {
        "dfs.namenode.name.dir": str(directory / "name"),
        "dfs.datanode.data.dir": str(directory / "data"),
        "dfs.namenode.rpc-address": f"127.0.0.1:{ports.namenode}",
        "dfs.namenode.http-address": f"127.0.0.1:{ports.namenode_http}",
        "dfs.datanode.address": f"127.0.0.1:{ports.datanode}",
        "dfs.datanode.http.address": f"127.0.0.1:{ports.datanode_http}",
        "dfs.datanode.ipc.address": f"127.0.0.1:{ports.datanode_ipc}",
        "dfs.datanode.hostname": "127.0.0.1",
        "dfs.replication": "1",  # one DataNode
        "dfs.datanode.synconclose": "true",  # a closed block is on the DataNode's disk, not only in its page cache
        "dfs.permissions.enabled": "false",  # one local user; Spark and this process write as whoever runs them
        # After a restart the NameNode leaves safe mode 5 s after the DataNode reported (default 30 s).
        "dfs.namenode.safemode.extension": "5000",
        # A killed DataNode is declared dead after ~30 s instead of 10.5 minutes.
        "dfs.namenode.heartbeat.recheck-interval": "15000",
        "dfs.heartbeat.interval": "1",
    }
    for name, values in (("core-site.xml", core), ("hdfs-site.xml", hdfs)):
        properties = "".join(
            f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n" for k, v in values.items()
        )
        (conf / name).write_text(f"<?xml version=\"1.0\"?>\n<configuration>\n{properties}</configuration>\n")
    (conf / "log4j.properties").write_text(
        "log4j.rootLogger=INFO,console\n"
        "log4j.appender.console=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n"
    )
    return conf


class _HdfsDaemon(EmbeddedService):
    """One Hadoop daemon: `java -cp <conf>:<jars> <main class>`, its files under $SCBDA_HOME/hadoop/<role>/."""

    main_class: str
    role: str
    port_setting = "the port in $SCBDA_HOME/hadoop/ports.json"  # for the "port taken" line
    uri_setting = "SCBDA_ARCHIVE_URI"
    start_timeout = 120.0

    def __init__(self, settings: Settings):
        self.hadoop = hadoop_dir(settings)
        self.ports = HdfsPorts.load_or_allocate(self.hadoop)
        super().__init__(settings)
        self.dir = self.hadoop / self.role
        self.log_file = self.dir / f"{self.role}.log"

    def marker(self) -> str:
        return f"-Dscbda.hdfs.{self.role}={self.hadoop}"

    def url(self) -> str:
        return f"hdfs://127.0.0.1:{self.ports.namenode}"

    def java(self, *args: str) -> list[str]:
        conf = write_config(self.hadoop, self.ports)
        return [
            str(Path(java_home()) / "bin" / "java"), f"-Xmx{DAEMON_HEAP}", self.marker(),
            "-Djava.net.preferIPv4Stack=true", f"-Dhadoop.log.dir={self.dir}",
            "-cp", f"{conf}{os.pathsep}{hadoop_classpath()}", self.main_class, *args,
        ]

    def launch(self) -> int:
        return self.process.spawn(self.java(), self.log_file, env=_daemon_env())


class HdfsNameNode(_HdfsDaemon):
    name = "hdfs-namenode"
    role = "namenode"
    main_class = NAMENODE_CLASS

    @property
    def port(self) -> int:
        return self.ports.namenode

    def launch(self) -> int:
        if not (self.hadoop / "name" / "current" / "VERSION").exists():
            self.format()
        return super().launch()

    def format(self) -> None:
        """The first start: a new, empty namespace (never run over an existing one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            result = subprocess.run(self.java("-format", "-nonInteractive"), stdout=log, stderr=subprocess.STDOUT,
                                    env=_daemon_env(), timeout=120)
        if result.returncode != 0:
            raise ServiceError(f"formatting the HDFS NameNode failed; see {self.log_file}")


class HdfsDataNode(_HdfsDaemon):
    name = "hdfs-datanode"
    role = "datanode"
    main_class = DATANODE_CLASS

    @property
    def port(self) -> int:
        return self.ports.datanode


def _daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_HOME"] = java_home()
    env.pop("CLASSPATH", None)
    return env


def hdfs_daemons(settings: Settings) -> list[_HdfsDaemon]:
    """Start order (the NameNode first); stop in reverse."""
    return [HdfsNameNode(settings), HdfsDataNode(settings)]


def archive_uri(settings: Settings) -> str:
    return f"hdfs://127.0.0.1:{HdfsPorts.load_or_allocate(hadoop_dir(settings)).namenode}{ARCHIVE_PATH}"


def hdfs_up(settings: Settings, timeout: float = 120.0) -> tuple[str, list[EmbeddedService]]:
    """Start (or reuse) the NameNode and DataNode, wait until HDFS takes writes; the archive URI and those started."""
    started = [daemon for daemon in hdfs_daemons(settings) if daemon.ensure()[1]]
    wait_writable(settings, timeout)
    from scbda_assets.archive.storage import ArchiveStore

    ArchiveStore(archive_uri(settings)).create_dir("")
    return archive_uri(settings), started


def hdfs_down(settings: Settings) -> list[str]:
    if not (hadoop_dir(settings) / "ports.json").exists():
        return []  # never started under this $SCBDA_HOME
    return [daemon.name for daemon in reversed(hdfs_daemons(settings)) if daemon.stop()]


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy


def _jmx(settings: Settings, bean: str) -> dict | None:
    port = HdfsPorts.load_or_allocate(hadoop_dir(settings)).namenode_http
    try:
        with _LOCAL.open(f"http://127.0.0.1:{port}/jmx?qry=Hadoop:service=NameNode,name={bean}", timeout=5) as response:
            beans = json.loads(response.read()).get("beans", [])
    except (OSError, ValueError):
        return None
    return beans[0] if beans else None


def namenode_state(settings: Settings) -> dict | None:
    """The NameNode's FSNamesystemState (JMX over its web UI): live DataNodes, capacity, safe mode."""
    return _jmx(settings, "FSNamesystemState")


def heartbeating_datanodes(settings: Settings, within_seconds: int = 3) -> int:
    """DataNodes whose last heartbeat is recent: a killed one still counts as live for a while, its restarted
    process only once it registered again."""
    info = _jmx(settings, "NameNodeInfo") or {}
    try:
        nodes = json.loads(info.get("LiveNodes") or "{}")
    except ValueError:
        return 0
    return sum(1 for node in nodes.values() if node.get("lastContact", within_seconds + 1) <= within_seconds)


def wait_writable(settings: Settings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state: dict | None = None
    while time.monotonic() < deadline:
        state = namenode_state(settings)
        if state and state.get("FSState") == "Operational" and heartbeating_datanodes(settings) >= 1:
            return
        time.sleep(0.5)
    seen = "no answer" if state is None else f"{state.get('NumLiveDataNodes')} live DataNodes, {state.get('FSState')}"
    raise ServiceError(f"HDFS is not writable after {timeout:.0f} s ({seen}); see {hadoop_dir(settings)}/*/*.log")


def hdfs_status(settings: Settings) -> list[str]:
    """One line per daemon, then the NameNode's view: live DataNodes, capacity, safe mode, web UI."""
    if not (hadoop_dir(settings) / "ports.json").exists():
        return []
    lines = []
    for daemon in hdfs_daemons(settings):
        running = daemon.status()
        lines.append(f"{daemon.name}: " + (f"running pid={running.pid} {running.url}" if running else "stopped"))
    ports = HdfsPorts.load_or_allocate(hadoop_dir(settings))
    state = namenode_state(settings)
    if state is None:
        lines.append(f"  hdfs namenode web UI http://127.0.0.1:{ports.namenode_http}: unreachable")
    else:
        gib = 1 << 30
        lines.append(
            f"  hdfs {state.get('FSState')}: live datanodes {state.get('NumLiveDataNodes')}, dead "
            f"{state.get('NumDeadDataNodes')}, capacity {state.get('CapacityTotal', 0) / gib:.1f} GiB, used "
            f"{state.get('CapacityUsed', 0) / gib:.2f} GiB, remaining {state.get('CapacityRemaining', 0) / gib:.1f} GiB; "
            f"web UI http://127.0.0.1:{ports.namenode_http}"
        )
    return lines
