"""The worker loop: the one place where Kafka offsets, MinIO reads and engine batches meet.

Consume–transform–produce in a Kafka transaction: each micro-batch's results (and any
dead letters) are produced and the batch's *next* offsets are sent to the same
transaction, then it commits. On an abortable error the transaction is aborted and the
consumer rewound to the last committed offsets, so the batch is redone; a fenced or fatal
producer ends the process (a restarted instance with the same id takes over cleanly).
Read-committed readers therefore see exactly one result per order, even after a kill -9.

Pipelined: the engine runs batch N on its own thread while this thread takes batch N+1
(whatever has arrived; it never waits to fill a batch, so a lone bill is not held back)
and fetches its images. Once N's engine is done, N+1 goes to the engine and then N's
transaction commits, so the engine does not idle through a commit; N+1's results commit
only after N's, and when N's commit aborts, N+1 is dropped (its engine run is wasted) and
both come again.
While it waits on the engine the consumer keeps polling (every 50 ms, without blocking: the
loop sleeps on the engine's future, not in the consumer), so a slow batch never exceeds
``max.poll.interval.ms`` and rebalances are served: what arrives is held and opens the next
batch, and the partitions are paused only once a full batch is held.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from billstream_core.errors import DecodeError, KafkaError
from billstream_core.group import committed_offsets, subscribe
from billstream_core.kafka import (
    ReliableProducer,
    commit_consumed,
    delivering_partitions,
    make_consumer,
    take_available,
)
from billstream_core.order_numbers import is_valid_order_number
from billstream_core.serde import codec
from billstream_core.settings import Settings
from inference_worker import results
from inference_worker.handler import BillHandler, EngineBatch, PreparedBill
from inference_worker.metrics import WorkerMetrics

log = logging.getLogger("billstream.worker")

# While the engine runs, the consumer is polled (without waiting) this often, and in between
# the loop waits on the engine itself, so a finished batch is noticed at once. Polling in 5 ms
# waits instead woke this thread 200 times a second to take the GIL from the engine's thread:
# the engine ran ~8% slower in the worker than alone (same bills, p50 batch 88 vs 79 ms).
POLL_WHILE_ENGINE_S = 0.05

# A partition resumed after the engine batch delivers only once the fetch then held by the
# broker returns. At the 2 s the other consumers use (billstream_core.kafka.FETCH_WAIT_MS) the
# engine stood idle for 7-11% of a 120-bill burst in batches of 8; at 500 ms for 1-2%.
RESUME_FETCH_WAIT_MS = 500

# Record headers of a result the engine produced: the pages of its engine call and the call's
# wall time. Diagnostics (the pipeline benchmark reads them), not part of the result contract.
ENGINE_BATCH_PAGES = "engine-batch-pages"
ENGINE_BATCH_MS = "engine-batch-ms"


def transactional_id(settings: Settings, instance_id: str) -> str:
    """One per worker identity and group: a restart with the same identity fences its
    predecessor, and equal ids in two deployments (groups) on one cluster never do."""
    return f"{settings.worker.group_id}-{instance_id}"


@dataclass
class WorkerStats:
    batches: int = 0
    results: int = 0
    failed: int = 0
    dead_letters: int = 0
    aborts: int = 0
    discarded: int = 0  # batches dropped uncommitted because a partition was revoked under them


@dataclass
class _Batch:
    messages: list[Message]
    outputs: list[dict[str, Any]] = field(default_factory=list)  # results known before the engine (undecodable)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    prepared: list[PreparedBill] = field(default_factory=list)  # fetched and decoded, for the engine
    engine: Future[EngineBatch] | None = None


class InferenceWorker:
    def __init__(self, settings: Settings, handler: BillHandler, *, instance_id: str,
                 consumer: Consumer | None = None, producer: ReliableProducer | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        """``consumer`` and ``producer``: stand-ins for unit tests of the loop's decisions."""
        self.settings = settings
        self.handler = handler
        self.instance_id = instance_id
        self.input_topic = settings.worker.input_topic or settings.topics.work
        self.stats = WorkerStats()
        self._stop = threading.Event()
        worker = settings.worker
        self.metrics = metrics or WorkerMetrics(worker.group_id)
        self.metrics.describe_model(handler.engine.name, handler.engine.version)
        # what the probes read (from their own thread): the loop's last turn and its partitions
        self.last_turn = time.monotonic()
        self.assigned = 0
        self.running = False
        self.consumer = consumer or make_consumer(settings.kafka, worker.group_id, read_committed=True, extra={
            "max.poll.interval.ms": worker.max_poll_interval_ms,
            "session.timeout.ms": min(15_000, worker.max_poll_interval_ms),
            "enable.partition.eof": False,
            "fetch.wait.max.ms": RESUME_FETCH_WAIT_MS,
            **self.metrics.lag.consumer_config(),
        })
        self.producer = producer or ReliableProducer(
            settings.kafka, transactional_id=transactional_id(settings, instance_id),
            extra={"transaction.timeout.ms": worker.transaction_timeout_ms})
        self._submitted = codec("BillSubmitted")
        self._result = codec("BillResult")
        # messages a poll handed over while the engine ran; they open the next batch
        self._held: list[Message] = []
        # partitions revoked or lost since the last commit decision (see _discard_revoked)
        self._revoked: set[tuple[str, int]] = set()

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> tuple[bool, str]:
        """Alive while the loop turns: it polls at least every POLL_WHILE_ENGINE_S, even
        during an engine batch, so a loop silent for the poll interval is stuck."""
        silent = time.monotonic() - self.last_turn
        ok = silent < self.settings.worker.max_poll_interval_ms / 1000
        return ok, f"loop last turned {silent:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        ok = self.running and self.assigned > 0
        return ok, f"{self.assigned} partition(s) of {self.input_topic} assigned" if self.running else "starting"

    def run(self) -> WorkerStats:
        try:
            self.producer.raw.init_transactions(30)  # fences an earlier incarnation, aborts its open transaction
        except KafkaException as exc:
            raise KafkaError(f"cannot initialise transactions: {exc}") from exc
        subscribe(self.consumer, [self.input_topic], on_revoke=self._on_revoke)
        log.info("worker %s consuming %s", self.instance_id, self.input_topic)
        engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        in_flight: _Batch | None = None
        self.running = True
        try:
            while not self._stop.is_set() or in_flight is not None:
                self.last_turn = time.monotonic()
                self.assigned = len(self.consumer.assignment())
                wait_s = self.settings.worker.max_wait_ms / 1000 if in_flight is None and not self._held else 0.0
                limit = self.settings.worker.max_batch
                messages, self._held = ([], []) if self._stop.is_set() else (self._held[:limit], self._held[limit:])
                room = limit - len(messages)
                if room > 0 and not self._stop.is_set():
                    if in_flight is not None and in_flight.engine is not None:
                        messages += self._gather(in_flight.engine, room)
                    else:
                        messages += take_available(self.consumer, room, wait_s)
                batch = self._start(messages) if messages else None  # fetches while the engine runs
                outputs = self._outputs(in_flight) if in_flight is not None else []
                if self._revoked and self._discard_revoked(in_flight, batch):
                    in_flight = None  # neither batch is committed: what is still ours comes again
                    continue
                if batch is not None and batch.prepared:
                    batch.engine = engine_thread.submit(self.handler.recognize, batch.prepared)
                if in_flight is not None and not self._commit(in_flight, outputs):
                    rewound = _partitions(in_flight.messages)
                    if batch is not None:
                        self._rewind_to_start(batch, rewound=in_flight)  # this one comes again after the earlier one
                        rewound |= _partitions(batch.messages)
                        batch = None  # its engine run, if any, finishes unread
                    self._held = [m for m in self._held if _where(m) not in rewound]  # they come again
                in_flight = batch
        finally:
            self.running = False
            engine_thread.shutdown(wait=True)
            self.consumer.close()
            self.handler.close()
        return self.stats

    # -- one micro-batch ------------------------------------------------------------------

    def _decode(self, messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[Message, str]]]:
        events, failures, dead = [], [], []
        for message in messages:
            try:
                events.append(self._submitted.decode(message.value()))
            except DecodeError as exc:
                dead.append((message, str(exc)))
                key = (message.key() or b"").decode("utf-8", "replace")
                if is_valid_order_number(key):
                    failures.append(results.failed(key, "UNDECODABLE_EVENT", str(exc),
                                                   model_name=self.handler.engine.name,
                                                   model_version=self.handler.engine.version))
        return events, failures, dead

    def _start(self, messages: list[Message]) -> _Batch:
        """Decode the events and fetch and decode their images."""
        events, failures, dead = self._decode(messages)
        prepared = self.handler.prepare(events) if events else []
        for bill in prepared:
            self.metrics.prepared(bill.fetch_ms, bill.decode_ms)
        return _Batch(messages, failures, dead, prepared)

    def _outputs(self, batch: _Batch) -> list[tuple[dict[str, Any], dict[str, str | bytes | None] | None]]:
        """The batch's results: those known before the engine, then the engine's (waited for,
        polling), each with its record headers: the engine batch's size and wall time, for
        diagnostics (a bill's own stages are in its timings)."""
        outputs: list[tuple[dict[str, Any], dict[str, str | bytes | None] | None]] = [(r, None) for r in batch.outputs]
        if batch.engine is not None:
            engine = self._wait(batch.engine)
            if engine.pages:
                self.metrics.batch_pages.observe(engine.pages)
                self.metrics.batch_seconds.observe(engine.ms / 1000)
            headers: dict[str, str | bytes | None] = {ENGINE_BATCH_PAGES: str(engine.pages),
                                                      ENGINE_BATCH_MS: f"{engine.ms:.2f}"}
            outputs += [(record, headers) for record in engine.results]
        return outputs

    def _commit(self, batch: _Batch, outputs: list[tuple[dict[str, Any], dict[str, str | bytes | None] | None]]) -> bool:
        """Produce the results and dead letters and commit them with the offsets; False when
        the batch was aborted and rewound."""
        def produce() -> None:
            for record, headers in outputs:
                self.producer.produce(self.settings.topics.results, self._result.encode(record), key=record["order_number"],
                                      headers=headers)
            for message, reason in batch.dead:
                self.producer.produce(self.settings.topics.dead_letter, message.value() or b"", key=message.key(), headers={
                    "reason": reason.encode()[:1000], "source": f"{message.topic()}/{message.partition()}/{message.offset()}".encode()})

        if not commit_consumed(self.producer, self.consumer, batch.messages, produce, owner=f"worker {self.instance_id}"):
            self.stats.aborts += 1
            self.metrics.transactions.labels("abort").inc()
            return False
        self.metrics.committed([record for record, _ in outputs], len(batch.dead))
        for record, _ in outputs:
            if record["status"] == "FAILED":
                log.info("order %s failed: %s", record["order_number"], record["error_code"],
                         extra={"order_number": record["order_number"], "error_code": record["error_code"]})
        self.stats.batches += 1
        self.stats.results += len(outputs)
        self.stats.failed += sum(r["status"] == "FAILED" for r, _ in outputs)
        self.stats.dead_letters += len(batch.dead)
        return True

    def _gather(self, engine: Future[EngineBatch], room: int) -> list[Message]:
        """Up to ``room`` messages, polled while the engine runs, so that the next batch is
        fetched and decoded before the engine is free; returns once it is full or the engine done."""
        messages: list[Message] = []
        while len(messages) < room and not engine.done() and not self._stop.is_set():
            self.last_turn = time.monotonic()
            messages += take_available(self.consumer, room - len(messages), 0)
            if len(messages) < room:
                wait([engine], timeout=POLL_WHILE_ENGINE_S)
        return messages

    def _wait(self, future: Future[EngineBatch]) -> EngineBatch:
        """The engine's results; meanwhile keep polling (liveness, rebalance callbacks), holding
        what arrives for the next batch. Partitions are paused only once a full batch is held:
        a resumed partition was seen to deliver nothing for ~0.5-1 s, which, paid after every
        batch, left the engine idle for a third of the time."""
        limit = self.settings.worker.max_batch
        paused: list[TopicPartition] = []
        try:
            while not future.done():
                self.last_turn = time.monotonic()
                if len(self._held) >= limit:  # again each time: a partition may have been assigned since
                    fresh = delivering_partitions(self.consumer, skip={_key(tp) for tp in paused})
                    if fresh:
                        self.consumer.pause(fresh)
                        paused += fresh
                # after the pause, poll may still hand over what it fetched before: held too
                # (seeking back to such a message lost it: resume restarts after it)
                self._held += take_available(self.consumer, max(1, limit - len(self._held)), 0)
                wait([future], timeout=POLL_WHILE_ENGINE_S)
        finally:
            if paused:  # only what was paused and is still ours: see delivering_partitions
                assigned = {_key(tp) for tp in self.consumer.assignment()}
                self.consumer.resume([tp for tp in paused if _key(tp) in assigned])
        return future.result()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A revoked partition's held messages go with it: its next owner reads them again.
        Those already in a batch are dealt with by the loop (_discard_revoked)."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._held = [m for m in self._held if _where(m) not in gone]
        self._revoked |= gone

    def _discard_revoked(self, in_flight: _Batch | None, batch: _Batch | None) -> bool:
        """Drop both batches, uncommitted, when either holds a message of a partition revoked
        since it was taken; True when they were dropped.

        A worker paused past its session (a zombie) wakes with messages, and an engine batch,
        of partitions the group has since given to another worker. Its next transaction would
        carry their results and offsets under its new generation, which the coordinator
        accepts: a second result for each such order. So nothing of a revoked partition is
        committed. A revoked partition may already be assigned again (at its committed offset),
        and a message taken in the poll that revoked it may predate the revocation, so instead
        of sorting messages, each partition concerned that is still assigned is rewound to its
        committed offset and all its local messages dropped: each comes again once, and the lost
        partitions' messages go to their new owner. Held messages of a revoked partition (taken
        in the poll that revoked it) are dropped the same way, without touching the batches."""
        revoked, self._revoked = self._revoked, set()
        in_batches = _partitions(in_flight.messages if in_flight is not None else []) | _partitions(
            batch.messages if batch is not None else [])
        dropped = bool(in_batches & revoked)
        touched = (in_batches if dropped else set()) | (_partitions(self._held) & revoked)
        if not touched:
            return False
        assigned = {_key(tp) for tp in self.consumer.assignment()}
        rewind = [TopicPartition(t, p) for t, p in touched if (t, p) in assigned]
        for tp in committed_offsets(self.consumer, rewind, timeout_s=30):
            self.consumer.seek(tp)
        self._held = [m for m in self._held if _where(m) not in touched]
        if dropped:
            self.stats.discarded += 1
        log.warning("worker %s: %d partition(s) revoked under its uncommitted messages; %s, %d partition(s) "
                    "rewound to their committed offsets", self.instance_id, len(touched & revoked),
                    "both batches dropped" if dropped else "held messages dropped", len(rewind))
        return dropped

    def _rewind_to_start(self, batch: _Batch, *, rewound: _Batch) -> None:
        """Seek back to ``batch``'s first offsets, except where ``rewound`` already sought further back."""
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()} - _partitions(rewound.messages)
        first: dict[tuple[str, int], int] = {}
        for message in batch.messages:
            key = _where(message)
            first[key] = min(first.get(key, message.offset() or 0), message.offset() or 0)
        for (topic, partition), offset in first.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))


def _where(message: Message) -> tuple[str, int]:
    return message.topic() or "", message.partition() or 0


def _partitions(messages: list[Message]) -> set[tuple[str, int]]:
    return {_where(m) for m in messages}


def _key(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition
