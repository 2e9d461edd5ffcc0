"""A local stack on free ports in a throw-away state directory, for benchmarks and tests:
it never touches a stack already running, and goes when the block ends."""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from billstream_core.kafka import ensure_topics
from billstream_core.settings import Settings, load_settings
from infra.cluster import with_brokers
from infra.kafka_local import ProxiedListener
from infra.stack import LocalStack
from infra.stack import free_port as free_port  # re-exported: the benchmarks' and tests' free ports


@contextmanager
def scratch_stack(*, brokers: int = 1, secure: bool = False, state_dir: Path | None = None, proxied: bool = False
                  ) -> Iterator[tuple[LocalStack, Settings]]:
    """The stack and the settings that reach it (on the secure stack: the admin's; each
    component's are in ``<state>/secure/<component>.env``). ``proxied``: each broker also
    listens for clients behind a TCP proxy (:class:`infra.kafka_local.ProxiedListener`), on
    free ports; the proxy itself is the caller's to start."""
    with tempfile.TemporaryDirectory(prefix="billstream-stack-") as temporary:
        state = state_dir or Path(temporary)
        servers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(brokers))
        settings = load_settings(kafka={"bootstrap_servers": servers}, storage={"endpoint": f"127.0.0.1:{free_port()}"},
                                 infra={"state_dir": state, "kafka_controller_port": free_port(),
                                        "minio_console_port": free_port(), "secure": secure},
                                 stream={"web_port": free_port()})
        if brokers > 1:
            settings = with_brokers(settings, brokers)
        local = LocalStack(settings)
        if proxied:
            for node in local.kafka_nodes:
                node.proxied = ProxiedListener(free_port(), free_port())
        local.up()
        try:
            yield local, local.settings
        finally:
            local.down()


def isolated_settings(base: Settings, *, partitions: int = 4, worker: dict[str, Any] | None = None,
                      prefix: str = "t") -> Settings:
    """Fresh topics (created here), consumer group and app id on ``base``'s services, so
    that runs sharing a stack never share state. Small worker batches: tests and fault
    cases drive a few bills a second."""
    tag = uuid.uuid4().hex[:10]
    topics = {"submitted": f"{prefix}-{tag}.submitted", "work": f"{prefix}-{tag}.work",
              "results": f"{prefix}-{tag}.results", "dead_letter": f"{prefix}-{tag}.dlq",
              "submitted_partitions": partitions, "work_partitions": partitions, "results_partitions": partitions,
              "replication_factor": base.topics.replication_factor}
    storage = base.storage.model_dump() | {"access_key": base.storage.access_key.get_secret_value(),
                                           "secret_key": base.storage.secret_key.get_secret_value()}
    settings = load_settings(kafka=base.kafka.model_dump(), storage=storage, topics=topics, infra=base.infra.model_dump(),
                             worker={"group_id": f"workers-{tag}", "max_batch": 4, "max_wait_ms": 100, "threads": 1,
                                     **(worker or {})},
                             stream={"app_id": f"stream-{tag}", "web_port": free_port()})
    ensure_topics(settings.kafka, settings.topics.all(), replication_factor=settings.topics.replication_factor)
    return settings
