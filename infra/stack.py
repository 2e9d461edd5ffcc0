"""`billstream infra up|down|status|logs`: the local Kafka + MinIO stack as one unit.

``up`` is idempotent (services already running are left alone), waits until both answer,
then creates the topics (partition counts from settings) and the bucket.
"""
from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from billstream_core.errors import BillstreamError, InfraError, PortInUse
from billstream_core.kafka import ensure_topics, wait_for_broker
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore
from infra.kafka_local import LocalKafka
from infra.minio_local import LocalMinio
from infra.processes import ManagedProcess
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


def _say(message: str) -> None:
    print(f"[infra] {message}", file=sys.stderr, flush=True)


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        infra = settings.infra
        self.state_dir = infra.resolved_state_dir
        kafka_host, kafka_port = settings.kafka.first_server
        self.kafka = LocalKafka(cache_dir=infra.cache_dir, state_dir=self.state_dir, port=kafka_port,
                                controller_port=infra.kafka_controller_port, heap=infra.kafka_heap,
                                quick_jit=infra.kafka_jit == "quick", data_dir=infra.kafka_log_dir)
        self.minio = LocalMinio(cache_dir=infra.cache_dir, state_dir=self.state_dir,
                                storage=settings.storage, console_port=infra.minio_console_port)
        self._kafka_ports = [(kafka_host, kafka_port, "Kafka"),
                             (kafka_host, infra.kafka_controller_port, "Kafka controller")]
        minio_host, minio_port = settings.storage.host_port
        self._minio_ports = [(minio_host, minio_port, "MinIO"),
                             (minio_host, infra.minio_console_port, "MinIO console")]

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> dict[str, str]:
        """Check the toolchains, then fetch/build what the cache lacks (slow on first run only)."""
        check_toolchains(self.settings.infra.cache_dir)
        return {"kafka": str(self.kafka.prepare()), "minio": str(self.minio.prepare())}

    def up(self) -> list[ServiceStatus]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        started: list[ManagedProcess] = []
        try:
            for service, ports in ((self.kafka, self._kafka_ports), (self.minio, self._minio_ports)):
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

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.infra.start_timeout_s
        self._wait(lambda: self._minio_live(), "MinIO", self.minio.process, deadline)
        self._wait(lambda: self._kafka_live(), "Kafka", self.kafka.process, deadline)

    def _wait(self, probe: Callable[[], bool], label: str, process: ManagedProcess, deadline: float) -> None:
        while True:
            if probe():
                return
            if process.running() is None:
                raise InfraError(f"{label} exited during start-up; see {process.log_path}")
            if time.monotonic() > deadline:
                raise InfraError(f"{label} did not become ready in {self.settings.infra.start_timeout_s:.0f}s; "
                                 f"see {process.log_path}")
            time.sleep(0.3)

    def _minio_live(self) -> bool:
        host, port = self.settings.storage.host_port
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/minio/health/live", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _kafka_live(self) -> bool:
        try:
            wait_for_broker(self.settings.kafka, timeout_s=2)
        except BillstreamError:
            return False
        return True

    def provision(self) -> None:
        created = ensure_topics(self.settings.kafka, self.settings.topics.all(),
                                replication_factor=self.settings.topics.replication_factor)
        if created:
            _say(f"created topics: {', '.join(created)}")
        if ObjectStore(self.settings.storage).ensure_bucket():
            _say(f"created bucket: {self.settings.storage.bucket}")

    def down(self) -> list[str]:
        stopped = []
        for process in (self.kafka.process, self.minio.process):
            if process.stop():
                stopped.append(process.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        result = []
        for process, address in ((self.kafka.process, self.settings.kafka.bootstrap_servers),
                                 (self.minio.process, self.settings.storage.endpoint)):
            running = process.running()
            result.append(ServiceStatus(process.name, running is not None, running.pid if running else None,
                                        address, str(process.log_path)))
        return result

    def logs(self, lines: int = 40) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for process in (self.kafka.process, self.minio.process):
            try:
                text = process.log_path.read_text(errors="replace").splitlines()
            except OSError:
                text = []
            out[process.name] = text[-lines:]
        return out
