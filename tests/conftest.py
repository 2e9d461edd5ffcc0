"""Session-wide real services and factory fixtures with random names."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from billstream_core.kafka import ensure_topics
from billstream_core.settings import Settings, TopicSpec
from billstream_core.storage import ObjectStore
from tests.support.services import containers, docker_available, local_processes


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a real Kafka broker and MinIO server, started once for the whole test run."""
    if docker_available():
        with containers() as settings:
            yield settings
    else:
        with local_processes(tmp_path_factory.mktemp("stack")) as settings:
            yield settings


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_topic(services: Settings, unique: Callable[[str], str]) -> Callable[..., str]:
    def create(partitions: int = 3) -> str:
        name = unique("test")
        ensure_topics(services.kafka, [TopicSpec(name=name, partitions=partitions)])
        return name

    return create


@pytest.fixture
def store(services: Settings) -> ObjectStore:
    return ObjectStore(services.storage)
