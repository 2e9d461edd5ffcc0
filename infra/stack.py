"""`billstream infra up|down|status|logs`: the local Kafka + MinIO stack as one unit.

``up`` is idempotent (services already running are left alone), waits until both answer,
then creates the topics (partition counts from settings) and the bucket.
"""
from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException

from billstream_core.errors import BillstreamError, InfraError, PortInUse
from billstream_core.kafka import ensure_topics, make_admin, wait_for_broker
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore
from infra.certs import ensure_tls
from infra.cluster import kafka_nodes
from infra.kafka_local import BrokerSecurity, LocalKafka
from infra.minio_local import LocalMinio
from infra.processes import ManagedProcess
from infra.security import (
    ADMIN,
    Credentials,
    provision_kafka,
    provision_storage,
    root_storage,
    secure_settings,
    write_env_files,
)
from infra.toolchain import check_toolchains


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    log_path: str


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(probe: Callable[[], bool], label: str, process: ManagedProcess, deadline: float,
               timeout_s: float) -> None:
    """Until ``probe()`` holds; a one-line :class:`InfraError` naming the log when the
    process exits first or ``deadline`` (``timeout_s`` after the start) passes."""
    while True:
        if probe():
            return
        if process.running() is None:
            raise InfraError(f"{label} exited during start-up; see {process.log_path}")
        if time.monotonic() > deadline:
            raise InfraError(f"{label} did not become ready in {timeout_s:.0f}s; see {process.log_path}")
        time.sleep(0.3)


def free_port() -> int:
    """A loopback port free now (the kernel's pick), for processes started here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _say(message: str) -> None:
    print(f"[infra] {message}", file=sys.stderr, flush=True)


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        infra = settings.infra
        self.state_dir = infra.resolved_state_dir
        self.security: BrokerSecurity | None = None
        if infra.secure:
            secure_dir = self.state_dir / "secure"
            self.credentials = Credentials(secure_dir / "credentials.json")
            self.tls = ensure_tls(secure_dir / "tls")
            settings = secure_settings(root_storage(settings, self.credentials), self.credentials, self.tls.ca)
            self.security = BrokerSecurity(self.tls, self.credentials.kafka_password(ADMIN))
        self.settings = settings  # on the secure stack: the admin's, which provisions everything
        self.kafka_nodes = kafka_nodes(settings, self.security)
        self.kafka = self.kafka_nodes[0]  # the first node (the only one by default)
        self.minio = LocalMinio(cache_dir=infra.cache_dir, state_dir=self.state_dir,
                                storage=settings.storage, console_port=infra.minio_console_port)
        self._kafka_ports = [[("127.0.0.1", node.port, f"Kafka ({node.name})"),
                              ("127.0.0.1", node.controller_port, f"Kafka controller ({node.name})")]
                             for node in self.kafka_nodes]
        minio_host, minio_port = settings.storage.host_port
        self._minio_ports = [(minio_host, minio_port, "MinIO"),
                             (minio_host, infra.minio_console_port, "MinIO console")]

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> dict[str, str]:
        """Check the toolchains, then fetch/build what the cache lacks (slow on first run only)."""
        check_toolchains(self.settings.infra.cache_dir)
        configs = {node.name: str(node.prepare()) for node in self.kafka_nodes}
        return configs | {"minio": str(self.minio.prepare())}

    def up(self) -> list[ServiceStatus]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        started: list[ManagedProcess] = []
        try:
            services: list[tuple[LocalKafka | LocalMinio, list[tuple[str, int, str]]]] = [
                *zip(self.kafka_nodes, self._kafka_ports), (self.minio, self._minio_ports)]
            for service, ports in services:
                if service.process.running() is not None:
                    continue
                for host, port, label in ports:
                    if not port_free(host, port):
                        raise PortInUse(
                            f"port {port} ({label}) on {host} is in use by another process: stop it, "
                            f"or pick other ports (BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS, "
                            f"BILLSTREAM_STORAGE__ENDPOINT, BILLSTREAM_INFRA__*_PORT)")
                service.start()
                started.append(service.process)
                running = service.process.running()
                _say(f"started {service.process.name} (pid {running.pid if running else '?'})")
            self._wait_ready()
            self.provision()
        except BillstreamError:
            for process in started:
                process.stop()
            raise
        return self.status()

    def wait_ready(self) -> None:
        """Until MinIO answers and every Kafka node has joined (after a node was restarted)."""
        self._wait_ready()

    def _wait_ready(self) -> None:
        timeout_s = self.settings.infra.start_timeout_s
        deadline = time.monotonic() + timeout_s
        wait_until(self.minio.live, "MinIO", self.minio.process, deadline, timeout_s)
        for node in self.kafka_nodes:
            wait_until(self._kafka_live, "Kafka", node.process, deadline, timeout_s)

    def _kafka_live(self) -> bool:
        """Every node has joined as a broker (a topic with three replicas needs all three)."""
        try:
            wait_for_broker(self.settings.kafka, timeout_s=2)
            brokers = make_admin(self.settings.kafka).list_topics(timeout=2).brokers
        except (BillstreamError, KafkaException):
            return False
        return len(brokers) >= len(self.kafka_nodes)

    def provision(self) -> None:
        created = ensure_topics(self.settings.kafka, self.settings.topics.all(),
                                replication_factor=self.settings.topics.replication_factor)
        if created:
            _say(f"created topics: {', '.join(created)}")
        if ObjectStore(self.settings.storage).ensure_bucket():
            _say(f"created bucket: {self.settings.storage.bucket}")
        if self.security is not None:
            provision_kafka(self.settings, self.credentials)
            provision_storage(self.settings, self.credentials)
            written = write_env_files(self.state_dir / "secure", self.settings, self.credentials, self.tls.ca)
            _say(f"secure stack: each component's settings in {written['worker'].parent}/<component>.env "
                 f"({', '.join(written)}); use `billstream --env-file FILE ...`")

    def _processes(self) -> list[ManagedProcess]:
        return [node.process for node in self.kafka_nodes] + [self.minio.process]

    def down(self) -> list[str]:
        """Stops this stack's processes, and Kafka nodes of the other layout (single node or
        cluster) left running in the same state directory."""
        stopped = []
        known = {p.name for p in self._processes()}
        others = [ManagedProcess(path.stem, self.state_dir) for path in sorted(self.state_dir.glob("kafka*.pid"))
                  if path.stem not in known]
        for process in [*self._processes(), *others]:
            if process.stop():
                stopped.append(process.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        result = []
        addresses = [(node.process, f"127.0.0.1:{node.port}") for node in self.kafka_nodes]
        for process, address in [*addresses, (self.minio.process, self.settings.storage.endpoint)]:
            running = process.running()
            result.append(ServiceStatus(process.name, running is not None, running.pid if running else None,
                                        address, str(process.log_path)))
        return result

    def logs(self, lines: int = 40) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for process in self._processes():
            try:
                text = process.log_path.read_text(errors="replace").splitlines()
            except OSError:
                text = []
            out[process.name] = text[-lines:]
        return out
