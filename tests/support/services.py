"""The real Kafka + MinIO for a test session.

Through testcontainers when a Docker engine answers, through the project's own local
stack (`infra/`) otherwise, on free ports and a throw-away state directory so a developer's
running stack is never touched. Never skips: if neither way starts, the tests fail.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.stacks import free_port as free_port  # re-exported: the tests' free ports
from bench.stacks import scratch_stack
from billstream_core.settings import Settings, load_settings

KAFKA_IMAGE = "apache/kafka:4.4.0"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"



def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False
    return True


@contextmanager
def local_processes(state_dir: Path) -> Iterator[Settings]:
    with scratch_stack(state_dir=state_dir) as (_, settings):
        yield settings


@contextmanager
def local_cluster(state_dir: Path, brokers: int = 3) -> Iterator[Settings]:
    """A replicated KRaft cluster of ``brokers`` nodes, with its own MinIO, on free ports."""
    with scratch_stack(brokers=brokers, state_dir=state_dir) as (_, settings):
        yield settings


@contextmanager
def local_secure_stack(state_dir: Path) -> Iterator[Path]:
    """The secure stack (TLS, SASL/SCRAM, ACLs, a MinIO user per component) on free ports;
    yields the directory of each component's settings file (``<component>.env``)."""
    with scratch_stack(secure=True, state_dir=state_dir):
        yield state_dir / "secure"


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
