"""Where a lost order got to: every record that names it, on every topic of the pipeline.

Printed when a test finds an order without a result, so that a failure on a CI machine (its
broker gone with it) says at which hop the order stopped, not only that it did.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from billstream_core.errors import DecodeError
from billstream_core.kafka import make_consumer
from billstream_core.serde import codec
from billstream_core.settings import Settings
from stream_app.changelogs import watermarks
from stream_app.router import router_topics


def _records(settings: Settings, topic: str, *, read_committed: bool,
             deadline_s: float = 30.0) -> list[tuple[int, int, bytes, bytes]]:
    """(partition, offset, key, value) of every record now on ``topic``: read until each
    partition's position reaches its high mark. A read_committed reader cannot pass an open
    transaction's records, so it also stops after 3 s without one once every partition has
    delivered (on a loaded machine the first fetch alone can take longer than that)."""
    reader = make_consumer(settings.kafka, f"trail-{uuid.uuid4().hex}", read_committed=read_committed)
    out: list[tuple[int, int, bytes, bytes]] = []
    try:
        metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return out
        marks = {partition: watermarks(reader, topic, partition) for partition in metadata.partitions}
        ends = {partition: high for partition, (low, high) in marks.items() if high > low}
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline, quiet = time.monotonic() + deadline_s, 0
        while ends and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is None or message.error() is not None:
                positions = reader.position([TopicPartition(topic, p) for p in ends])
                for tp in positions:  # past control records and aborted ones too
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition)
                started = all(tp.offset >= 0 for tp in positions)
                quiet = quiet + 1 if started else 0
                if read_committed and quiet >= 6:
                    break
                continue
            quiet = 0
            out.append((message.partition() or 0, message.offset() or 0, message.key() or b"", message.value() or b""))
            if (message.offset() or 0) + 1 >= ends.get(message.partition() or 0, 0):
                ends.pop(message.partition() or 0, None)
    finally:
        reader.close()
    return out


def order_trail(settings: Settings, orders: set[str]) -> dict[str, list[str]]:
    """order → one line per record that names it (topic[partition]@offset and what it says)."""
    trail: dict[str, list[str]] = defaultdict(list)
    submitted, result = codec("BillSubmitted"), codec("BillResult")
    internal = router_topics(settings)
    for topic in (settings.topics.submitted, settings.topics.work, internal.by_image.name, settings.topics.results):
        committed = {(p, o) for p, o, _, _ in _records(settings, topic, read_committed=True)}
        for partition, offset, key, value in _records(settings, topic, read_committed=False):
            where = f"{topic}[{partition}]@{offset}{'' if (partition, offset) in committed else ' (not committed)'}"
            try:
                event = submitted.decode(value)
                order, what = event["order_number"], f"submission of {event['image']['sha256'][:12]}"
            except DecodeError:
                try:
                    record = result.decode(value)
                    order, what = record["order_number"], f"result {record['status']} cached={record['cached']}"
                except DecodeError:
                    order, what = key.decode("utf-8", "replace"), f"{len(value)} undecodable bytes"
            if order in orders:
                trail[order].append(f"{where}: {what}")
    for topic in (internal.images.name, internal.orders.name):
        for partition, offset, key, value in _records(settings, topic, read_committed=True):
            text = value.decode("utf-8", "replace")
            for order in orders:
                if order in text or key.decode("utf-8", "replace") == order:
                    entry = json.loads(value) if value else None
                    trail[order].append(f"{topic}[{partition}]@{offset} key {key.decode()[:12]}: {_brief(entry, order)}")
    return dict(trail)


def _brief(entry: object, order: str) -> str:
    if not isinstance(entry, dict):
        return "tombstone"
    if "lead" in entry:
        waiting = any(w["order"] == order for w in entry.get("waiters", []))
        return (f"state {entry['state']}, lead {'this' if entry['lead'] == order else entry['lead'][-6:]}, "
                f"waiting {waiting}, answered {order in entry.get('answered', {})}")
    return json.dumps(entry)[:200]


def log_tails(log_dir: Path, lines: int = 40) -> str:
    """The last lines of each service log the test wrote."""
    parts = []
    for path in sorted(log_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
    return "\n".join(parts)
