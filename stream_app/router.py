"""Exactly-once routing of submissions: the cache, single flight and the work topic.

Faust (0.15) can commit an input offset without handing the event to an agent when it
arrives during table recovery (faust-streaming#596, #216), which would lose an order. So
everything on the delivery path runs here, on confluent-kafka transactions, and Faust only
keeps the queryable orders table.

  submitted ─┐                       ┌▶ work          (a new image: one inference)
             ├─▶ by-image (sha256) ──┼▶ results       (a repeat: answered from cache)
  results ───┘   (repartition)       └▶ images log    (the image index, compacted)

One consumer reads all three inputs; each poll's outputs, the image index updates and the
input offsets commit in one transaction. Index updates are staged per batch and applied to
memory only after the commit, so an aborted batch leaves no trace; a partition's index is
rebuilt from its compacted changelog when the partition is assigned.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from billstream_core.errors import DecodeError, KafkaError
from billstream_core.kafka import ReliableProducer, commit_consumed, make_consumer, take_available
from billstream_core.serde import codec
from billstream_core.settings import Settings, TopicSpec
from stream_app import records

log = logging.getLogger("billstream.router")

KIND = "kind"
RESTORE_TIMEOUT_S = 300.0
SUBMITTED, RESULT = b"submitted", b"result"


def router_topics(settings: Settings) -> tuple[TopicSpec, TopicSpec]:
    """(repartition by image, image index changelog): co-partitioned with the submissions."""
    app_id, partitions = settings.stream.app_id, settings.topics.submitted_partitions
    return (TopicSpec(name=f"{app_id}-router-by-image", partitions=partitions),
            TopicSpec(name=f"{app_id}-router-images-changelog", partitions=partitions, compacted=True))


class ImageRouter:
    def __init__(self, settings: Settings, *, model_version: str, instance_id: str) -> None:
        self.settings = settings
        self.model_version = model_version
        by_image, changelog = router_topics(settings)
        self.by_image, self.changelog = by_image.name, changelog.name
        self.inputs = [settings.topics.submitted, settings.topics.results, self.by_image]
        self.consumer = make_consumer(settings.kafka, f"{settings.stream.app_id}-router", read_committed=True, extra={
            "group.instance.id": f"router-{instance_id}", "session.timeout.ms": 15_000,
        })
        self.producer = ReliableProducer(settings.kafka, transactional_id=f"{settings.stream.app_id}-router-{instance_id}")
        self.index: dict[int, dict[str, dict[str, Any]]] = {}  # by-image partition → sha256 → entry
        self.stats = {"routed_new": 0, "answered_from_cache": 0, "waiting": 0, "settled": 0, "aborts": 0}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._submitted, self._result = codec("BillSubmitted"), codec("BillResult")
        self._staged: dict[tuple[int, str], dict[str, Any] | None] = {}
        self._outputs: list[tuple[str, bytes, bytes | None, dict[str, str | bytes | None] | None]] = []

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ------------------------------------------------------------------------

    def run(self, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        try:
            self.producer.raw.init_transactions(30)  # fences an earlier incarnation, aborts its open transaction
            self.consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                    on_lost=self._on_revoke)
            while not self._stop.is_set():
                messages = take_available(self.consumer, 500, 0.2)
                if self.consumer.assignment():
                    self.ready.set()
                if messages:
                    self._process(messages)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, which stops the process
            log.error("router stopped: %s", exc)
            if on_fatal is not None:
                on_fatal(exc)
            raise
        finally:
            self.ready.clear()
            self.consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = [tp for tp in partitions if tp.topic == self.by_image]
        if mine:
            # committed offsets first: read_committed waits for a previous owner's open transaction
            consumer.committed(mine, timeout=60)
            for tp in mine:
                self.index[tp.partition] = self._restore(tp.partition)
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic == self.by_image:
                self.index.pop(tp.partition, None)
        consumer.incremental_unassign(partitions)

    def _restore(self, partition: int) -> dict[str, dict[str, Any]]:
        """The image index of one partition, read from its compacted changelog up to its end."""
        reader = make_consumer(self.settings.kafka, f"{self.settings.stream.app_id}-router-restore", read_committed=True)
        entries: dict[str, dict[str, Any]] = {}
        try:
            tp = TopicPartition(self.changelog, partition)
            low, high = reader.get_watermark_offsets(tp, timeout=30)
            if high <= low:
                return entries
            reader.assign([TopicPartition(self.changelog, partition, OFFSET_BEGINNING)])
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while True:
                if time.monotonic() > deadline:
                    raise KafkaError(f"restoring {self.changelog}[{partition}] did not reach offset {high} "
                                     f"within {RESTORE_TIMEOUT_S:.0f}s")
                message = reader.poll(1.0)
                if message is not None and message.error() is None:
                    key = (message.key() or b"").decode()
                    value = message.value()
                    if value is None:
                        entries.pop(key, None)
                    else:
                        entries[key] = json.loads(value)
                position = reader.position([tp])[0].offset
                if position >= high:
                    break
        finally:
            reader.close()
        log.info("image index partition %d restored: %d images", partition, len(entries))
        return entries

    # -- one batch ------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        self._staged, self._outputs = {}, []
        counts = dict.fromkeys(self.stats, 0)
        for message in messages:
            topic = message.topic()
            if topic == self.settings.topics.submitted:
                self._repartition_submission(message)
            elif topic == self.settings.topics.results:
                self._repartition_result(message)
            else:
                self._route(message, counts)

        def produce() -> None:
            for topic, value, out_key, headers in self._outputs:
                self.producer.produce(topic, value, key=out_key, headers=headers)
            for (partition, sha), entry in self._staged.items():
                payload = None if entry is None else json.dumps(entry, separators=(",", ":")).encode()
                self.producer.produce(self.changelog, payload, key=sha.encode(), partition=partition)

        if not commit_consumed(self.producer, self.consumer, messages, produce, owner="router"):
            self.stats["aborts"] += 1
            return
        for (partition, sha), entry in self._staged.items():
            if entry is None:
                self.index.get(partition, {}).pop(sha, None)
            else:
                self.index.setdefault(partition, {})[sha] = entry
        for name, count in counts.items():
            self.stats[name] += count

    def _emit(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str | bytes | None] | None = None) -> None:
        self._outputs.append((topic, value, key, headers))

    def _repartition_submission(self, message: Message) -> None:
        value = message.value() or b""
        try:
            sha = self._submitted.decode(value)["image"]["sha256"]
        except DecodeError:
            self._emit(self.settings.topics.work, value, message.key())  # the worker dead-letters it, answers FAILED
            return
        self._emit(self.by_image, value, sha.encode(), {KIND: SUBMITTED})

    def _repartition_result(self, message: Message) -> None:
        value = message.value() or b""
        try:
            result = self._result.decode(value)
        except DecodeError as exc:
            log.warning("undecodable result for %r: %s", message.key(), exc)
            return
        if not result["cached"] and result.get("image_sha256"):
            self._emit(self.by_image, value, result["image_sha256"].encode(), {KIND: RESULT})

    # -- the image index --------------------------------------------------------------------

    def _entry(self, partition: int, sha: str) -> dict[str, Any] | None:
        if (partition, sha) in self._staged:
            entry = self._staged[(partition, sha)]
        else:
            entry = self.index.get(partition, {}).get(sha)
        return json.loads(json.dumps(entry)) if entry is not None else None  # a private copy to edit

    def _route(self, message: Message, counts: dict[str, int]) -> None:
        partition, sha = message.partition() or 0, (message.key() or b"").decode()
        kind = dict(message.headers() or []).get(KIND)
        value = message.value() or b""
        try:
            if kind == SUBMITTED:
                self._on_submission(partition, sha, value, counts)
            elif kind == RESULT:
                self._on_result(partition, sha, self._result.decode(value), counts)
        except DecodeError as exc:  # only this router writes the topic: a bug, not a reason to stall
            log.error("skipping undecodable %s record for image %s: %s", kind, sha, exc)

    def _on_submission(self, partition: int, sha: str, value: bytes, counts: dict[str, int]) -> None:
        event = self._submitted.decode(value)
        order = event["order_number"]
        entry = self._entry(partition, sha)
        if entry is not None and entry["model_version"] != self.model_version:
            entry = None  # recognised by an older model: recognise again
        if entry is None:
            self._staged[(partition, sha)] = records.new_entry(order, self.model_version)
            self._emit(self.settings.topics.work, value, order.encode())
            counts["routed_new"] += 1
        elif entry["state"] == "done":
            if order not in entry["answered"]:
                self._answer(entry["result"], order, event.get("submitted_at_ms"), counts)
                entry["answered"].append(order)
                self._staged[(partition, sha)] = entry
        elif order != entry["lead"] and records.add_waiter(entry, order, value):
            self._staged[(partition, sha)] = entry
            counts["waiting"] += 1

    def _on_result(self, partition: int, sha: str, result: dict[str, Any], counts: dict[str, int]) -> None:
        entry = self._entry(partition, sha)
        if entry is None or entry["state"] == "done" or result["order_number"] != entry["lead"]:
            return
        waiters = entry["waiters"]
        if records.cacheable(result):
            for waiter in waiters:
                event = records.waiter_event(waiter)
                self._answer(result, waiter["order"], self._submitted_at(event), counts)
            entry.update(state="done", result=result, waiters=[],
                         answered=entry["answered"] + [w["order"] for w in waiters])
            self._staged[(partition, sha)] = entry
        else:
            self._staged[(partition, sha)] = None  # a transient failure: nothing to reuse, each waiter goes to work
            for waiter in waiters:
                self._emit(self.settings.topics.work, records.waiter_event(waiter), waiter["order"].encode())
        counts["settled"] += 1

    def _submitted_at(self, event: bytes) -> int | None:
        try:
            return self._submitted.decode(event)["submitted_at_ms"]
        except DecodeError:
            return None

    def _answer(self, result: dict[str, Any], order: str, submitted_at: int | None, counts: dict[str, int]) -> None:
        copy = records.cached_copy(result, order, submitted_at)
        self._emit(self.settings.topics.results, self._result.encode(copy), order.encode())
        counts["answered_from_cache"] += 1
