"""The worker loop: the one place where Kafka offsets, MinIO reads and engine batches meet.

Consume–transform–produce in a Kafka transaction: each micro-batch's results (and any
dead letters) are produced and the batch's *next* offsets are sent to the same
transaction, then it commits. On an abortable error the transaction is aborted and the
consumer rewound to the last committed offsets, so the batch is redone; a fenced or fatal
producer ends the process (a restarted instance with the same id takes over cleanly).
Read-committed readers therefore see exactly one result per order, even after a kill -9.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from billstream_core.errors import DecodeError, KafkaError
from billstream_core.kafka import ReliableProducer, make_consumer
from billstream_core.order_numbers import is_valid_order_number
from billstream_core.serde import codec
from billstream_core.settings import Settings
from inference_worker import results
from inference_worker.handler import BillHandler

log = logging.getLogger("billstream.worker")


@dataclass
class WorkerStats:
    batches: int = 0
    results: int = 0
    failed: int = 0
    dead_letters: int = 0
    aborts: int = 0


class InferenceWorker:
    def __init__(self, settings: Settings, handler: BillHandler, *, instance_id: str) -> None:
        self.settings = settings
        self.handler = handler
        self.instance_id = instance_id
        self.input_topic = settings.worker.input_topic or settings.topics.work
        self.stats = WorkerStats()
        self._stop = threading.Event()
        worker = settings.worker
        self.consumer = make_consumer(settings.kafka, worker.group_id, read_committed=True, extra={
            "group.instance.id": instance_id,
            "max.poll.interval.ms": worker.max_poll_interval_ms,
            "session.timeout.ms": 15_000,
            "enable.partition.eof": False,
        })
        self.producer = ReliableProducer(settings.kafka, transactional_id=f"billstream-worker-{instance_id}", extra={
            "transaction.timeout.ms": worker.transaction_timeout_ms,
        })
        self._submitted = codec("BillSubmitted")
        self._result = codec("BillResult")

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> WorkerStats:
        try:
            self.producer.raw.init_transactions(30)  # fences an earlier incarnation, aborts its open transaction
        except KafkaException as exc:
            raise KafkaError(f"cannot initialise transactions: {exc}") from exc
        self.consumer.subscribe([self.input_topic])
        log.info("worker %s consuming %s", self.instance_id, self.input_topic)
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(self.settings.worker.max_batch, self.settings.worker.max_wait_ms / 1000)
                messages = [m for m in messages if m.error() is None]
                if messages:
                    self.process(messages)
        finally:
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

    def process(self, messages: list[Message]) -> None:
        events, outputs, dead = self._decode(messages)
        if events:
            outputs += self.handler.handle(events)
        next_offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic() or "", message.partition() or 0)
            next_offsets[key] = max(next_offsets.get(key, 0), (message.offset() or 0) + 1)
        raw = self.producer.raw
        try:
            raw.begin_transaction()
            for record in outputs:
                self.producer.produce(self.settings.topics.results, self._result.encode(record), key=record["order_number"])
            for message, reason in dead:
                self.producer.produce(self.settings.topics.dead_letter, message.value() or b"", key=message.key(), headers={
                    "reason": reason.encode()[:1000], "source": f"{message.topic()}/{message.partition()}/{message.offset()}".encode()})
            raw.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                                            self.consumer.consumer_group_metadata(), 30)
            raw.commit_transaction(60)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not error.txn_requires_abort() and not error.retriable():
                raise KafkaError(f"worker {self.instance_id} cannot continue: {error.str()}") from exc
            self._abort_and_rewind(next_offsets, error.str())
            return
        self.stats.batches += 1
        self.stats.results += len(outputs)
        self.stats.failed += sum(r["status"] == "FAILED" for r in outputs)
        self.stats.dead_letters += len(dead)

    def _abort_and_rewind(self, next_offsets: dict[tuple[str, int], int], reason: str) -> None:
        log.warning("aborting batch (%s); rewinding to committed offsets", reason)
        self.stats.aborts += 1
        try:
            self.producer.raw.abort_transaction(30)
        except KafkaException as exc:
            raise KafkaError(f"abort failed: {exc}") from exc
        partitions = [TopicPartition(t, p) for (t, p) in next_offsets]
        for tp in self.consumer.committed(partitions, timeout=30):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        time.sleep(0.5)
