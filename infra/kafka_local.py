"""One combined broker+controller Kafka node in KRaft mode, on loopback."""
from __future__ import annotations

import base64
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from billstream_core.errors import InfraError
from infra.certs import BROKER_CN, TlsFiles
from infra.processes import ManagedProcess
from infra.security import ADMIN, SCRAM
from infra.toolchain import kafka_libs, require

_LOG4J2 = Path(__file__).resolve().parent / "kafka" / "log4j2.yaml"




def _argfile_line(argument: str) -> str:
    """One argument of a JVM @argfile. The launcher splits lines at whitespace and, after
    the main class, keeps quotes as they are, so an argument must be one plain word."""
    if not argument or any(c.isspace() or c in "\"'#\\" for c in argument):
        raise InfraError(f"cannot pass {argument[:40]!r} to the Kafka storage tool: no spaces or quotes, please "
                         "(is the state directory's path plain?)")
    return argument


def new_cluster_id() -> str:
    """A random KRaft cluster id that the storage tool will not read as an option.

    A url-safe base64 id starts with '-' one time in 64, and kafka-storage then takes it
    for a flag ("--cluster-id: expected one argument"); Kafka's own generator skips those.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class BrokerSecurity:
    """The secure listener's material: clients on SASL_SSL (SCRAM-SHA-512), controllers on
    mutual TLS, an authorizer that refuses what no ACL allows."""
    tls: TlsFiles
    admin_password: str


def secure_properties(security: BrokerSecurity) -> list[str]:
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" '
            f'password="{security.admin_password}";')
    return [
        "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name=SASL_SSL",
        f"sasl.enabled.mechanisms={SCRAM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={security.tls.broker}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={security.tls.ca}",
        "listener.name.controller.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};User:CN={BROKER_CN},O=billstream local stack",
        "allow.everyone.if.no.acl.found=false",
    ]


@dataclass(frozen=True)
class ProxiedListener:
    """A second plaintext listener for clients behind a TCP proxy: the broker listens on
    ``port`` and tells the clients that connect through it to use ``advertised`` (the
    proxy's port), so every connection they open, not only the bootstrap, crosses the proxy."""
    port: int
    advertised: int


def server_properties(*, port: int, controller_port: int, data_dir: Path, node_id: int = 1,
                      voters: str | None = None, cluster_size: int = 1,
                      security: BrokerSecurity | None = None, proxied: ProxiedListener | None = None) -> str:
    """One combined broker+controller node; ``voters`` lists every node's controller
    (``id@host:port``, comma-separated), the node itself when it is alone."""
    replicas = min(3, cluster_size)
    client = "SASL_SSL" if security is not None else "PLAINTEXT"
    if proxied is not None and security is not None:
        raise InfraError("a proxied listener is plaintext: not on the secure stack")
    extra = f",PROXIED://127.0.0.1:{proxied.port}" if proxied is not None else ""
    advertised = f",PROXIED://127.0.0.1:{proxied.advertised}" if proxied is not None else ""
    lines = [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters or f'{node_id}@127.0.0.1:{controller_port}'}",
        f"listeners={client}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{extra}",
        f"advertised.listeners={client}://127.0.0.1:{port}{advertised}",
        "controller.listener.names=CONTROLLER",
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
    ]
    lines += secure_properties(security) if security is not None else [
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        + (",PROXIED:PLAINTEXT" if proxied is not None else ""),
        "inter.broker.listener.name=PLAINTEXT",
    ]
    return "\n".join([*lines, ""])


class LocalKafka:
    def __init__(self, *, cache_dir: Path, state_dir: Path, port: int, controller_port: int, heap: str,
                 quick_jit: bool = True, data_dir: Path | None = None, name: str = "kafka", node_id: int = 1,
                 voters: str | None = None, cluster_size: int = 1, cluster_id_file: Path | None = None,
                 security: BrokerSecurity | None = None, proxied: ProxiedListener | None = None) -> None:
        """``name``: the node's directory, pid and log file under ``state_dir`` ("kafka" for
        the single node, "kafka-N" for node N of a cluster, so the two never share a log)."""
        self.proxied = proxied
        self.cache_dir = cache_dir
        self.name = name
        self.node_id, self.voters, self.cluster_size = node_id, voters, cluster_size
        self.security = security
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
        properties = server_properties(port=self.port, controller_port=self.controller_port, data_dir=data_dir,
                                       node_id=self.node_id, voters=self.voters, cluster_size=self.cluster_size,
                                       security=self.security, proxied=self.proxied)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold the admin's password
        with os.fdopen(fd, "w") as out:
            out.write(properties)
        if not (data_dir / "meta.properties").exists():
            cluster_id_path = self.cluster_id_file
            if not cluster_id_path.exists() or cluster_id_path.read_text().startswith("-"):
                cluster_id_path.write_text(new_cluster_id())
            arguments = ["format", "-t", cluster_id_path.read_text().strip(), "-c", str(config), "--ignore-formatted"]
            if self.security is not None:  # the admin's SCRAM credential, in the metadata from the start
                arguments += ["--add-scram", f"{SCRAM}=[name={ADMIN},password={self.security.admin_password}]"]
            # the arguments go in a 0600 file the JVM launcher reads (@file): a password on
            # the command line would show in every process listing
            argfile = self.dir / "format.args"
            fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("\n".join(_argfile_line(a) for a in arguments))
            try:
                result = subprocess.run(self.java_command(libs, "kafka.tools.StorageTool", f"@{argfile}"),
                                        capture_output=True, text=True)
            finally:
                argfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise InfraError(f"formatting the KRaft storage failed: {result.stdout[-300:]}{result.stderr[-300:]}")
        return config

    def start(self) -> None:
        config = self.prepare()
        self.process.start(self.java_command(kafka_libs(self.cache_dir), "kafka.Kafka", str(config)))
