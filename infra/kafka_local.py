"""One combined broker+controller Kafka node in KRaft mode, on loopback."""
from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from billstream_core.errors import InfraError
from infra.processes import ManagedProcess
from infra.toolchain import kafka_libs, require

_LOG4J2 = Path(__file__).resolve().parent / "kafka" / "log4j2.yaml"


def new_cluster_id() -> str:
    """A random KRaft cluster id that the storage tool will not read as an option.

    A url-safe base64 id starts with '-' one time in 64, and kafka-storage then takes it
    for a flag ("--cluster-id: expected one argument"); Kafka's own generator skips those.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(*, port: int, controller_port: int, data_dir: Path, node_id: int = 1,
                      voters: str | None = None, cluster_size: int = 1) -> str:
    """One combined broker+controller node; ``voters`` lists every node's controller
    (``id@host:port``, comma-separated), the node itself when it is alone."""
    replicas = min(3, cluster_size)
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters or f'{node_id}@127.0.0.1:{controller_port}'}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={2 if replicas >= 3 else 1}",
        f"offsets.topic.replication.factor={replicas}",
        "offsets.topic.num.partitions=10",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={2 if replicas >= 3 else 1}",
        "transaction.state.log.num.partitions=10",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "log.retention.hours=168",
        "",
    ])


class LocalKafka:
    def __init__(self, *, cache_dir: Path, state_dir: Path, port: int, controller_port: int, heap: str,
                 quick_jit: bool = True, data_dir: Path | None = None, name: str = "kafka", node_id: int = 1,
                 voters: str | None = None, cluster_size: int = 1, cluster_id_file: Path | None = None) -> None:
        """``name``: the node's directory, pid and log file under ``state_dir`` ("kafka" for
        the single node, "kafka-N" for node N of a cluster, so the two never share a log)."""
        self.cache_dir = cache_dir
        self.name = name
        self.node_id, self.voters, self.cluster_size = node_id, voters, cluster_size
        self.dir = state_dir / name
        self.cluster_id_file = cluster_id_file or self.dir / "cluster.id"  # one file shared by a cluster's nodes
        self.data_dir = data_dir if data_dir is not None else self.dir / "data"  # the topics' log
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.quick_jit = quick_jit
        self.process = ManagedProcess(name, state_dir)

    def java_command(self, libs: Path, main_class: str, *args: str) -> list[str]:
        """The JVM command line for one of Kafka's main classes (the broker, the storage tool)."""
        return [
            require("java"), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            *(["-XX:TieredStopAtLevel=1"] if self.quick_jit else []),
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={_LOG4J2}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp", f"{libs}/*", main_class, *args,
        ]

    def prepare(self) -> Path:
        """Fetch the jars, write the config and format the KRaft storage once."""
        libs = kafka_libs(self.cache_dir)
        data_dir = self.data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "server.properties"
        config.write_text(server_properties(port=self.port, controller_port=self.controller_port, data_dir=data_dir,
                                            node_id=self.node_id, voters=self.voters, cluster_size=self.cluster_size))
        if not (data_dir / "meta.properties").exists():
            cluster_id_path = self.cluster_id_file
            if not cluster_id_path.exists() or cluster_id_path.read_text().startswith("-"):
                cluster_id_path.write_text(new_cluster_id())
            result = subprocess.run(
                self.java_command(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id_path.read_text().strip(),
                           "-c", str(config), "--ignore-formatted"),
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise InfraError(f"formatting the KRaft storage failed: {result.stdout[-300:]}{result.stderr[-300:]}")
        return config

    def start(self) -> None:
        config = self.prepare()
        self.process.start(self.java_command(kafka_libs(self.cache_dir), "kafka.Kafka", str(config)))
