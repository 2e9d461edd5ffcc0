"""Helpers for the HTTP API's tests: API processes on the session's services, and keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from billstream_core.settings import Settings, load_settings, settings_env
from tests.support.pipeline import ServiceProcess
from tests.support.services import free_port


def api_settings(base: Settings, keys_file: Path, *, limits: dict[str, object] | None = None,
                 **api: object) -> Settings:
    """``base`` with an API section on a free port and a keys file."""
    data = {name: getattr(base, name).model_dump() for name in ("kafka", "topics", "limits", "worker", "stream")}
    data["limits"] |= limits or {}
    storage = base.storage.model_dump()
    storage["access_key"] = base.storage.access_key.get_secret_value()
    storage["secret_key"] = base.storage.secret_key.get_secret_value()
    return load_settings(**data, storage=storage, api={"port": free_port(), "keys_file": keys_file, **api})


class ApiProcess(ServiceProcess):
    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        super().__init__(settings, name, log_dir, ["api"])
        self.url = f"http://{settings.api.host}:{settings.api.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the API at {self.url} never became ready")


def api_keys(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`billstream api-keys ...` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "billstream_cli.main", "api-keys", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **settings_env(settings)})


def create_key(settings: Settings, name: str, *extra: str) -> tuple[str, str]:
    """(id, key) of a new key."""
    done = api_keys(settings, "--json", "create", name, *extra)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return created["id"], created["key"]


def submitted_orders(settings: Settings) -> list[str]:
    """The order number of every event on the submitted topic now (read to its end)."""
    from confluent_kafka import TopicPartition

    from billstream_core.kafka import make_consumer, partition_count
    from billstream_core.serde import codec

    topic = settings.topics.submitted
    consumer = make_consumer(settings.kafka, f"count-{time.monotonic_ns()}")
    try:
        partitions = [TopicPartition(topic, p, 0) for p in range(partition_count(settings.kafka, topic))]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        positions = dict.fromkeys(ends, 0)
        orders: list[str] = []
        deadline = time.monotonic() + 60
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            positions[int(message.partition() or 0)] = int(message.offset() or 0) + 1
            orders.append(codec("BillSubmitted").decode(message.value())["order_number"])
        return orders
    finally:
        consumer.close()
