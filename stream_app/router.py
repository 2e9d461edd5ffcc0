"""Exactly-once routing of submissions: the cache, single flight and the work topic.

Faust (0.15) can commit an input offset without handing the event to an agent when it
arrives during table recovery (faust-streaming#596, #216), which would lose an order. So
everything on the delivery path runs here, on confluent-kafka transactions, and Faust only
keeps the queryable orders table.

  submitted ─┬─▶ results       (first hop: a repeat of a recognised image, answered at once)
             └─▶ by-image (sha256) ──┬▶ work          (a new image: one inference)
  results ──────▶ (repartition)      ├▶ results       (a repeat: answered from cache)
                                     └▶ images log    (the image index, compacted)

One consumer reads all three inputs; each poll's outputs, the state updates and the input
offsets commit in one transaction. A poll with nothing to write (the cached answers this
router reads back from the results topic, a dropped repeat) opens none: its offsets ride
with the next transaction, or commit on their own once the router idles, since reading
such a message again after a crash changes nothing. That halves the transactions of a
cache hit, and each one can make the next submission wait. The first hop reads submissions in their own
(order-keyed) partition: it answers a repeat from a view of every recognised image (tailed
from the images log) and remembers each order it saw in an orders log, so that an order
number sent again is never answered twice. Everything else takes the image-keyed hop, which
owns single flight. When this router owns the image's by-image partition too (always, with
one router), that hop runs in place, in the same transaction, instead of through the topic:
a new bill then costs one transaction before the work topic, not two, and a result one
before its waiters are answered. (A router that lost the partition without knowing cannot
commit: its offsets carry a stale group generation.) State updates are staged per batch and
applied to the state store (RocksDB, stream_app/state.py) only after the commit, so an
aborted batch leaves no trace; a partition's state is rebuilt from its compacted changelog
when the partition is assigned.
"""
from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, Message, TopicPartition

from billstream_core.clock import now_ms
from billstream_core.errors import DecodeError, KafkaError
from billstream_core.group import subscribe
from billstream_core.kafka import (
    ReliableProducer,
    commit_consumed,
    key_partition,
    make_consumer,
    next_offsets,
    partition_count,
    take_available,
)
from billstream_core.lag import ConsumerLag
from billstream_core.serde import codec
from billstream_core.settings import Settings, TopicSpec
from stream_app import records
from stream_app.changelogs import PREFETCH, RecognisedImages, restore_partitions
from stream_app.state import INDEX, ORDERS, PartitionedState, StateStore

log = logging.getLogger("billstream.router")

KIND = "kind"
ORDER_SWEEP_S = 600.0  # how often the remembered orders drop what the changelog's retention dropped
DEFERRED_IDLE_S = 1.0  # deferred offsets commit alone after this long when no message arrived (0.2 s poll)
DEFERRED_MAX_S = 5.0  # and after this long whatever arrives
SUBMITTED, RESULT = b"submitted", b"result"


class RouterTopics(NamedTuple):
    by_image: TopicSpec  # submissions and results repartitioned by image
    images: TopicSpec  # image index changelog, partitioned like by_image
    orders: TopicSpec  # first-hop orders changelog, partitioned like the submissions


def router_topics(settings: Settings) -> RouterTopics:
    """The router's own topics, all co-partitioned with the submissions."""
    app_id, partitions = settings.stream.app_id, settings.topics.submitted_partitions
    return RouterTopics(TopicSpec(name=f"{app_id}-router-by-image", partitions=partitions),
                        TopicSpec(name=f"{app_id}-router-images-changelog", partitions=partitions, compacted=True),
                        TopicSpec(name=f"{app_id}-router-orders-changelog", partitions=partitions, compacted=True,
                                  retention_ms=settings.stream.order_memory_ms))


class ImageRouter:
    def __init__(self, settings: Settings, *, model_version: str, instance_id: str,
                 consumer: Consumer | None = None, producer: ReliableProducer | None = None,
                 state_dir: Path | None = None) -> None:
        """``consumer`` and ``producer``: stand-ins for unit tests of the routing decisions.
        ``state_dir``: the state store's scratch directory (default: one per app id and
        instance under the temp dir)."""
        self.settings = settings
        self.model_version = model_version
        topics = router_topics(settings)
        self.by_image, self.changelog, self.orders_log = topics.by_image.name, topics.images.name, topics.orders.name
        self.inputs = [settings.topics.submitted, settings.topics.results, self.by_image]
        self.lag = ConsumerLag(f"{settings.stream.app_id}-router")
        self.consumer = consumer or make_consumer(
            settings.kafka, f"{settings.stream.app_id}-router", read_committed=True,
            extra={"session.timeout.ms": 15_000, **PREFETCH, **self.lag.consumer_config()})  # dynamic membership: see docs/decisions/2026-12-06-*
        self.producer = producer or ReliableProducer(settings.kafka,
                                                     transactional_id=f"{settings.stream.app_id}-router-{instance_id}")
        self.store = StateStore(state_dir or Path(tempfile.gettempdir()) / "billstream-router"
                                / settings.stream.app_id / instance_id)
        self.index = PartitionedState(self.store, INDEX)  # by-image partition → sha256 → entry
        self.orders = PartitionedState(self.store, ORDERS)  # submitted partition → order → images seen
        self.recognised = RecognisedImages(settings, self.changelog, model_version=model_version, store=self.store)
        self.stats = {"routed_new": 0, "answered_from_cache": 0, "answered_first_hop": 0, "dropped_repeats": 0,
                      "waiting": 0, "settled": 0, "image_hop_in_place": 0, "aborts": 0, "transactions": 0,
                      "deferred_offsets": 0, "foreign_versions": 0}
        self._foreign_seen: set[str] = set()
        self._image_partitions = topics.by_image.partitions  # read from the broker at start
        self.ready = threading.Event()
        self.stopped = False  # the health probe's answer: the process is ending
        self._stop = threading.Event()
        self._submitted, self._result = codec("BillSubmitted"), codec("BillResult")
        self._staged: dict[tuple[int, str], dict[str, Any] | None] = {}
        self._staged_orders: dict[tuple[int, str], dict[str, Any]] = {}
        self._outputs: list[tuple[str, bytes, bytes | None, dict[str, str | bytes | None] | None, int | None]] = []
        self._deferred: dict[tuple[str, int], int] = {}  # offsets of polls with nothing to write, not yet committed
        self._deferred_since = 0.0

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ------------------------------------------------------------------------

    def run(self, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        try:
            self.producer.raw.init_transactions(30)  # fences an earlier incarnation, aborts its open transaction
            self._image_partitions = partition_count(self.settings.kafka, self.by_image, 30)
            subscribe(self.consumer, self.inputs, prepare=self._restore, on_revoke=self._on_revoke)
            next_sweep = time.monotonic() + ORDER_SWEEP_S
            while not self._stop.is_set():
                messages = take_available(self.consumer, 500, 0.2)
                if time.monotonic() > next_sweep:
                    self._forget_old_orders()
                    next_sweep = time.monotonic() + ORDER_SWEEP_S
                if self.recognised.error is not None:
                    raise KafkaError(f"the recognised-images view failed: {self.recognised.error}")
                if self.consumer.assignment() and self.recognised.ready.is_set():
                    self.ready.set()
                if messages:
                    self._process(messages)
                if self._deferred and time.monotonic() - self._deferred_since > (DEFERRED_MAX_S if messages else DEFERRED_IDLE_S):
                    self._commit_deferred()
            if self._deferred:
                try:
                    self._commit_deferred()  # a clean stop leaves less to read again
                except KafkaError as exc:  # those messages change nothing when read again: no reason to fail the stop
                    log.warning("could not commit the last offsets at stop: %s", exc)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, which stops the process
            log.error("router stopped: %s", exc)
            if on_fatal is not None:
                on_fatal(exc)
            raise
        finally:
            self.stopped = True
            self.ready.clear()
            self.recognised.stop()
            self.consumer.close()
            self.store.close()

    def _forget_old_orders(self) -> None:
        """Drop the orders the orders changelog's retention has dropped (or soon will)."""
        cutoff = now_ms() - self.settings.stream.order_memory_ms
        forgotten = 0
        for partition in list(self.orders.owned):
            old = [order for order, known in self.orders.items(partition) if records.last_seen_before(known, cutoff)]
            self.orders.write(partition, [(order, None) for order in old])
            forgotten += len(old)
        if forgotten:
            log.info("forgot %d orders older than %.0f days", forgotten, self.settings.stream.order_memory_days)

    def _restore(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """State for the partitions about to be assigned, read after their committed offsets
        (which wait for a previous owner's open transaction), so that it is at least as new."""
        stateful = [tp for tp in partitions if tp.topic in (self.by_image, self.settings.topics.submitted)]
        adopted: dict[int, int] = {}
        if stateful:
            state = {self.changelog: self.index, self.orders_log: self.orders}
            logs = [(self.changelog if tp.topic == self.by_image else self.orders_log, tp.partition) for tp in stateful]
            for topic, partition in logs:
                state[topic].adopt(partition)  # emptied: a partition held before is restored anew
            ends = restore_partitions(self.settings, logs, lambda topic, partition, batch: state[topic].write(partition, batch))
            adopted = {p: ends[(t, p)] for t, p in logs if t == self.changelog}
        if not self.recognised.started:  # it tails the partitions just restored from where the restore stopped
            self.recognised.start(adopted)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._deferred.pop((tp.topic, tp.partition), None)  # the next owner reads them again: harmless
            if tp.topic == self.by_image:
                self.index.release(tp.partition)
            elif tp.topic == self.settings.topics.submitted:
                self.orders.release(tp.partition)
        consumer.incremental_unassign(partitions)

    # -- one batch ------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        self._staged, self._staged_orders, self._outputs = {}, {}, []
        counts = dict.fromkeys(self.stats, 0)
        for message in messages:
            topic = message.topic()
            if topic == self.settings.topics.submitted:
                self._first_hop(message, counts)
            elif topic == self.settings.topics.results:
                self._repartition_result(message, counts)
            else:
                self._route(message, counts)

        if not (self._outputs or self._staged or self._staged_orders):
            if not self._deferred:
                self._deferred_since = time.monotonic()
            next_offsets(messages, into=self._deferred)
            counts["deferred_offsets"] += len(messages)
            self._count(counts)
            return

        index_changes = [(partition, sha, None if entry is None else json.dumps(entry, separators=(",", ":")).encode())
                         for (partition, sha), entry in self._staged.items()]
        order_changes = [(partition, order, json.dumps(known, separators=(",", ":")).encode())
                         for (partition, order), known in self._staged_orders.items()]

        def produce() -> None:
            for topic, value, out_key, headers, partition in self._outputs:
                self.producer.produce(topic, value, key=out_key, headers=headers, partition=partition)
            for partition, sha, payload in index_changes:
                self.producer.produce(self.changelog, payload, key=sha.encode(), partition=partition)
            for partition, order, payload in order_changes:
                self.producer.produce(self.orders_log, payload, key=order.encode(), partition=partition)

        committed = commit_consumed(self.producer, self.consumer, messages, produce, owner="router", also=self._deferred)
        self._deferred.clear()  # committed, or rewound with the batch to be read again
        self.stats["transactions"] += 1
        if not committed:
            self.stats["aborts"] += 1
            return
        self.store.write([(INDEX, partition, sha, payload) for partition, sha, payload in index_changes
                          if partition in self.index]
                         + [(ORDERS, partition, order, payload) for partition, order, payload in order_changes
                            if partition in self.orders])  # not a partition revoked meanwhile
        self._count(counts)

    def _count(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.stats[name] += count

    def _commit_deferred(self) -> None:
        """Commit the offsets of polls that had nothing to write, in a transaction of their own."""
        if not commit_consumed(self.producer, self.consumer, [], lambda: None, owner="router", also=self._deferred):
            self.stats["aborts"] += 1
        self.stats["transactions"] += 1
        self._deferred.clear()

    def _emit(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str | bytes | None] | None = None,
              partition: int | None = None) -> None:
        self._outputs.append((topic, value, key, headers, partition))

    def _first_hop(self, message: Message, counts: dict[str, int]) -> None:
        """Answer a repeat of a recognised image here; send the rest on to the image's partition."""
        value = message.value() or b""
        try:
            event = self._submitted.decode(value)
        except DecodeError:
            self._emit(self.settings.topics.work, value, message.key())  # the worker dead-letters it, answers FAILED
            return
        partition, order, sha = message.partition() or 0, event["order_number"], event["image"]["sha256"]
        known = self._staged_orders[(partition, order)] if (partition, order) in self._staged_orders \
            else self.orders.get(partition, order)
        cached = self.recognised.get(sha)
        action = records.first_hop(known, sha, self.model_version, cached is not None)
        if action == "drop":
            counts["dropped_repeats"] += 1
            return
        if action == "answer" and cached is not None:
            self._answer(cached, order, event.get("submitted_at_ms"), counts)
            counts["answered_first_hop"] += 1
        else:
            def in_place(image_partition: int) -> None:
                self._on_submission(image_partition, sha, value, event, counts)
                counts["image_hop_in_place"] += 1

            self._image_hop(SUBMITTED, value, sha, in_place)
        self._staged_orders[(partition, order)] = records.remember_order(known, sha, self.model_version,
                                                                         answered=action == "answer")

    def _image_hop(self, kind: bytes, value: bytes, sha: str, in_place: Callable[[int], None]) -> None:
        """``in_place(partition)`` when this router owns the image's by-image partition, else
        the record goes through the by-image topic to the router that does."""
        partition = key_partition(sha.encode(), self._image_partitions)
        if partition in self.index:
            in_place(partition)
        else:
            self._emit(self.by_image, value, sha.encode(), {KIND: kind}, partition)

    def _repartition_result(self, message: Message, counts: dict[str, int]) -> None:
        value = message.value() or b""
        try:
            result = self._result.decode(value)
        except DecodeError as exc:
            log.warning("undecodable result for %r: %s", message.key(), exc)
            return
        if result["cached"] or not result.get("image_sha256"):
            return
        sha = result["image_sha256"]
        self._image_hop(RESULT, value, sha, lambda partition: self._on_result(partition, sha, result, counts))

    # -- the image index --------------------------------------------------------------------

    def _entry(self, partition: int, sha: str) -> dict[str, Any] | None:
        if (partition, sha) in self._staged:
            entry = self._staged[(partition, sha)]
            return json.loads(json.dumps(entry)) if entry is not None else None  # a private copy to edit
        return self.index.get(partition, sha)  # read from the store: already a private copy

    def _route(self, message: Message, counts: dict[str, int]) -> None:
        partition, sha = message.partition() or 0, (message.key() or b"").decode()
        kind = dict(message.headers() or []).get(KIND)
        value = message.value() or b""
        try:
            if kind == SUBMITTED:
                self._on_submission(partition, sha, value, self._submitted.decode(value), counts)
            elif kind == RESULT:
                self._on_result(partition, sha, self._result.decode(value), counts)
        except DecodeError as exc:  # only this router writes the topic: a bug, not a reason to stall
            log.error("skipping undecodable %s record for image %s: %s", kind, sha, exc)

    def _on_submission(self, partition: int, sha: str, value: bytes, event: dict[str, Any],
                       counts: dict[str, int]) -> None:
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
                records.mark_answered(entry, [order], memory_ms=self.settings.stream.order_memory_ms)
                self._staged[(partition, sha)] = entry
        elif order != entry["lead"] and records.add_waiter(entry, order, value):
            self._staged[(partition, sha)] = entry
            counts["waiting"] += 1

    def _on_result(self, partition: int, sha: str, result: dict[str, Any], counts: dict[str, int]) -> None:
        entry = self._entry(partition, sha)
        if entry is None or entry["state"] == "done" or result["order_number"] != entry["lead"]:
            return
        waiters = entry["waiters"]
        foreign = result.get("model_version") not in (None, self.model_version)
        if foreign:
            self._warn_foreign(result["model_version"])
            counts["foreign_versions"] += 1
        if records.cacheable(result) and not foreign:
            for waiter in waiters:
                event = records.waiter_event(waiter)
                self._answer(result, waiter["order"], self._submitted_at(event), counts)
            records.mark_answered(entry, [w["order"] for w in waiters], memory_ms=self.settings.stream.order_memory_ms)
            entry.update(state="done", result=result, waiters=[])
            self._staged[(partition, sha)] = entry
        else:  # a transient failure, or another version's text: nothing to reuse, each waiter goes to work
            self._staged[(partition, sha)] = None
            for waiter in waiters:
                self._emit(self.settings.topics.work, records.waiter_event(waiter), waiter["order"].encode())
        counts["settled"] += 1

    def _warn_foreign(self, version: str) -> None:
        if version not in self._foreign_seen:
            self._foreign_seen.add(version)
            log.warning("a worker produced model version %s, this stream app expects %s: such results answer their "
                        "own order but are never cached; run the workers and the stream app with the same "
                        "BILLSTREAM_WORKER__BACKEND, __DEVICE and __DECODER", version, self.model_version)

    def _submitted_at(self, event: bytes) -> int | None:
        try:
            return self._submitted.decode(event)["submitted_at_ms"]
        except DecodeError:
            return None

    def _answer(self, result: dict[str, Any], order: str, submitted_at: int | None, counts: dict[str, int]) -> None:
        copy = records.cached_copy(result, order, submitted_at)
        self._emit(self.settings.topics.results, self._result.encode(copy), order.encode())
        counts["answered_from_cache"] += 1
