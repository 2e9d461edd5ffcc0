"""The real Kafka + MinIO for a test session.

Through testcontainers when a Docker engine answers, through the project's own local
stack (`infra/`) otherwise, on free ports and a throw-away state directory so a developer's
running stack is never touched. Never skips: if neither way starts, the tests fail.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from billstream_core.settings import Settings, load_settings

KAFKA_IMAGE = "apache/kafka:4.4.0"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False
    return True


@contextmanager
def local_processes(state_dir: Path) -> Iterator[Settings]:
    from infra.stack import LocalStack

    settings = load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        storage={"endpoint": f"127.0.0.1:{free_port()}"},
        infra={"state_dir": state_dir, "kafka_controller_port": free_port(),
               "minio_console_port": free_port()},
    )
    stack = LocalStack(settings)
    try:
        stack.up()
        yield settings
    finally:
        stack.down()


@contextmanager
def local_cluster(state_dir: Path, brokers: int = 3) -> Iterator[Settings]:
    """A replicated KRaft cluster of ``brokers`` nodes, with its own MinIO, on free ports."""
    from infra.cluster import with_brokers
    from infra.stack import LocalStack

    servers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(brokers))
    settings = with_brokers(load_settings(
        kafka={"bootstrap_servers": servers}, storage={"endpoint": f"127.0.0.1:{free_port()}"},
        infra={"state_dir": state_dir, "kafka_controller_port": free_port(), "minio_console_port": free_port()},
    ), brokers)
    stack = LocalStack(settings)
    try:
        stack.up()
        yield settings
    finally:
        stack.down()


@contextmanager
def local_secure_stack(state_dir: Path) -> Iterator[Path]:
    """The secure stack (TLS, SASL/SCRAM, ACLs, a MinIO user per component) on free ports;
    yields the directory of each component's settings file (``<component>.env``)."""
    from infra.stack import LocalStack

    settings = load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"}, storage={"endpoint": f"127.0.0.1:{free_port()}"},
        infra={"state_dir": state_dir, "kafka_controller_port": free_port(), "minio_console_port": free_port(),
               "secure": True},
    )
    stack = LocalStack(settings)
    try:
        stack.up()
        yield state_dir / "secure"
    finally:
        stack.down()


@contextmanager
def containers() -> Iterator[Settings]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer

    from infra.stack import LocalStack

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, \
            MinioContainer(MINIO_IMAGE, access_key="billstream", secret_key="billstream-dev-secret") as minio:
        minio_config = minio.get_config()
        settings = load_settings(
            kafka={"bootstrap_servers": kafka.get_bootstrap_server()},
            storage={"endpoint": minio_config["endpoint"], "access_key": "billstream",
                     "secret_key": "billstream-dev-secret"},
        )
        LocalStack(settings).provision()
        yield settings
