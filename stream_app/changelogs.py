"""The router's state, kept in compacted changelog topics: read back one partition at a time
(when the router is assigned it) or tailed whole (the view of recognised images).

Values are JSON objects keyed by a string (an image's sha256, an order number); a tombstone
removes a key. Everything here reads with ``read_committed``: the router writes its
changelogs in the same transactions as its outputs, so an aborted batch leaves no entry.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from billstream_core.errors import KafkaError
from billstream_core.kafka import make_consumer, take_available
from billstream_core.settings import Settings
from stream_app import records
from stream_app.state import INDEX, RECOGNISED, StateStore

log = logging.getLogger("billstream.router")

RESTORE_TIMEOUT_S = 300.0
METADATA_TIMEOUT_S = 60.0
# librdkafka prefetches up to 64 MB a consumer by default; records of these topics carry
# whole results, so a backlog would hold that much in the heap of a stream app that is
# otherwise flat. 8 MB still fills a poll of hundreds of records.
PREFETCH = {"queued.max.messages.kbytes": 8192}


def watermarks(reader: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) offsets, retried while a just-created topic has no leader yet."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:
        try:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:  # e.g. NOT_LEADER_FOR_PARTITION, not flagged retriable
                raise KafkaError(f"cannot read the offsets of {topic}[{partition}]: {exc}") from exc
            time.sleep(0.5)


def _record(message: Message) -> tuple[str, bytes | None]:
    value = message.value()
    return (message.key() or b"").decode(), None if value is None else bytes(value)


# (changelog topic, partition, [(key, value or None for a tombstone)]): where a restore's records go
RestoreSink = Callable[[str, int, list[tuple[str, bytes | None]]], None]


def restore_partitions(settings: Settings, partitions: list[tuple[str, int]], sink: RestoreSink) -> dict[tuple[str, int], int]:
    """Changelog partitions (topic, partition), each read from its start up to its end as of
    now, all through one reader (a router assigned a dozen partitions restores them at
    once), into ``sink`` in order, a poll at a time. Returns each partition's end: what
    comes later was not read."""
    if not partitions:
        return {}
    reader = make_consumer(settings.kafka, f"{settings.stream.app_id}-router-restore", read_committed=True,
                           extra=PREFETCH)
    marks: dict[tuple[str, int], int] = {}
    counts = dict.fromkeys(partitions, 0)
    try:
        ends = {}
        for topic, partition in partitions:
            low, high = watermarks(reader, topic, partition)
            marks[(topic, partition)] = high
            if high > low:
                ends[(topic, partition)] = high
        if ends:
            reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic, partition in ends])
        deadline = time.monotonic() + RESTORE_TIMEOUT_S
        while ends:
            if time.monotonic() > deadline:
                raise KafkaError(f"restoring {', '.join(f'{t}[{p}]' for t, p in ends)} did not reach "
                                 f"their end offsets within {RESTORE_TIMEOUT_S:.0f}s")
            polled: dict[tuple[str, int], list[tuple[str, bytes | None]]] = {}
            for message in take_available(reader, 1000, 0.5):
                polled.setdefault((message.topic() or "", message.partition() or 0), []).append(_record(message))
            for (topic, partition), batch in polled.items():
                sink(topic, partition, batch)
                counts[(topic, partition)] += len(batch)
            for tp in reader.position([TopicPartition(t, p) for t, p in ends]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    del ends[(tp.topic, tp.partition)]
                    reader.incremental_unassign([TopicPartition(tp.topic, tp.partition)])
    finally:
        reader.close()
    for (topic, partition), count in counts.items():
        log.info("%s partition %d restored: %d records", topic, partition, count)
    return marks


class RecognisedImages:
    """Every partition's recognised images (sha256 → result), tailed from the image index
    changelog on a thread of its own into the router's state store (on disk).

    It lets the router answer a repeat in the first hop, from the submission's own
    partition, instead of repartitioning it by image first. It may lag the index by a
    moment: a repeat it does not know yet takes the repartition hop, where the
    authoritative index answers it, so a lag costs latency, never correctness.

    Partitions the router has just restored are adopted, not read again: the view copies
    their entries from the store's image index and tails them from where the restore
    stopped. With one router, which owns every partition, the changelog is read once at
    start instead of twice.
    """

    def __init__(self, settings: Settings, topic: str, *, model_version: str, store: StateStore) -> None:
        self.settings, self.topic, self.model_version, self.store = settings, topic, model_version, store
        self.ready = threading.Event()  # caught up with the changelog as it was at start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._adopted: dict[int, int] = {}
        self.records_read = 0  # from the topic, adopted entries not counted

    def get(self, sha256: str) -> dict[str, Any] | None:
        """The result recognised for this image by this model version, when reusable."""
        return self.store.get(RECOGNISED, 0, sha256)

    def __len__(self) -> int:
        return self.store.count(RECOGNISED)

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, adopted: Mapping[int, int] | None = None) -> None:
        """Start tailing. ``adopted`` (partition → the offset its restore read up to): the
        partitions whose entries are already in the store's image index, copied here now."""
        self._adopted = dict(adopted or {})
        for partition in self._adopted:
            for sha256, entry in self.store.items(INDEX, partition):
                self.apply(sha256, entry)
        self._thread = threading.Thread(target=self._run, name="recognised-images", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def apply(self, sha256: str, entry: dict[str, Any] | None) -> None:
        """One changelog record: keeps finished, reusable results of this model version only."""
        if entry is not None and entry.get("state") == "done" and entry.get("model_version") == self.model_version \
                and entry.get("result") is not None and records.cacheable(entry["result"]):
            self.store.put(RECOGNISED, 0, sha256, entry["result"])
        else:
            self.store.put(RECOGNISED, 0, sha256, None)

    def _run(self) -> None:
        reader = make_consumer(self.settings.kafka, f"{self.settings.stream.app_id}-images-view", read_committed=True,
                               extra=PREFETCH)
        try:
            partitions = reader.list_topics(self.topic, timeout=30).topics[self.topic].partitions
            fresh = [p for p in partitions if p not in self._adopted]
            marks = {p: watermarks(reader, self.topic, p) for p in fresh}
            ends = {p: high for p, (low, high) in marks.items() if high > low}  # the partitions with records to read
            reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in fresh]
                          + [TopicPartition(self.topic, p, end) for p, end in self._adopted.items()])
            while not self._stop.is_set():
                for message in take_available(reader, 500, 0.1):
                    self.records_read += 1
                    key, value = _record(message)
                    self.apply(key, None if value is None else json.loads(value))
                if not self.ready.is_set():
                    positions = reader.position([TopicPartition(self.topic, p) for p in ends])
                    if all(tp.offset >= ends[tp.partition] for tp in positions):
                        self.ready.set()
                        log.info("recognised images view ready: %d images", len(self))
        except BaseException as exc:  # noqa: BLE001 - the router reports it and stops the process
            self._error = exc
            log.error("recognised images view stopped: %s", exc)
        finally:
            reader.close()
