"""Kafka client factories (confluent-kafka) and topic provisioning.

Producers are idempotent with ``acks=all``. Delivery failures are held by the wrapper and
raised at the next ``flush()``, so a caller cannot "succeed" while a record was lost.
librdkafka's own logs go to the ``billstream.kafka`` logger, not to stderr.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from billstream_core.errors import BrokerUnavailable, DeliveryError, KafkaError
from billstream_core.group import committed_offsets
from billstream_core.settings import KafkaSettings, TopicSpec

log = logging.getLogger("billstream.kafka")


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        "logger": log,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username:
        config["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_location)
    return config


def key_partition(key: bytes, partitions: int) -> int:
    """The partition :class:`ReliableProducer` (``murmur2_random``, as Java and aiokafka) gives
    ``key``: lets a process tell whether it owns a key's partition before producing to it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class ReliableProducer:
    """An idempotent producer that surfaces delivery errors at ``flush()``."""

    def __init__(self, settings: KafkaSettings, *, transactional_id: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self._servers = settings.bootstrap_servers
        config = client_config(settings) | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",  # Faust's aiokafka reads it through cramjam (aiokafka[lz4])
            # the Java/aiokafka partitioner, so Faust and confluent producers agree on a key's partition
            "partitioner": "murmur2_random",
        }
        if transactional_id is not None:
            config["transactional.id"] = transactional_id
            # A transaction begun right after a commit can be refused with CONCURRENT_TRANSACTIONS
            # while the coordinator still writes the last one's markers; at the default 100 ms
            # backoff the retry stalled a router batch (a cache hit's p99) by ~100 ms.
            config["retry.backoff.ms"] = 10
        config |= extra or {}
        self._config = config
        self._producer = Producer(config)
        self._errors: list[str] = []
        self.delivered = 0

    @property
    def raw(self) -> Producer:
        """The underlying producer, for transaction calls."""
        return self._producer

    def renew(self, timeout_s: float = 30.0) -> None:
        """Replace a wedged transactional producer with a new one of the same transactional
        id: its init_transactions fences the old one and aborts its open transaction. The old
        one goes once the call stuck in it returns (it can commit nothing: it is fenced)."""
        fresh = Producer(self._config)
        try:
            fresh.init_transactions(timeout_s)
        except KafkaException as exc:
            raise KafkaError(f"cannot replace a stuck transactional producer: {exc}") from exc
        self._producer = fresh

    def _on_delivery(self, error: RdKafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}[{message.partition()}]: {error.str()}")
        else:
            self.delivered += 1

    def produce(self, topic: str, value: bytes | None, key: str | bytes | None = None,
                headers: dict[str, str | bytes | None] | None = None, partition: int | None = None,
                on_delivery: Callable[[str | None], None] | None = None) -> None:
        """``value=None`` is a tombstone; ``partition`` overrides the partitioner (co-partitioned
        state); ``on_delivery(error)`` hears this record's outcome (None: the broker has it),
        from whichever thread polls or flushes next."""
        def delivered(error: RdKafkaError | None, message: Message) -> None:
            self._on_delivery(error, message)
            if on_delivery is not None:
                on_delivery(None if error is None else error.str())

        callback = self._on_delivery if on_delivery is None else delivered
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                else:
                    self._producer.produce(topic, value=value, key=key, headers=headers, partition=partition,
                                           on_delivery=callback)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as exc:
                raise KafkaError(f"cannot produce to {topic}: {exc}") from exc
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if remaining:
            errors.append(f"{remaining} message(s) still undelivered after {timeout:.0f}s "
                          f"(is Kafka at {self._servers} reachable?)")
        if errors:
            raise DeliveryError("delivery failed: " + "; ".join(errors[:5]))


# How long the broker holds a fetch that finds nothing new. It answers as soon as records (or
# a transaction's commit) arrive, so a longer hold costs no latency; it only spares the broker
# the empty fetches of idle consumers, several per second each at librdkafka's 500 ms. Not so
# for a consumer that pauses and resumes partitions: see inference_worker.loop.
FETCH_WAIT_MS = 2000


def make_consumer(settings: KafkaSettings, group_id: str, *, read_committed: bool = True,
                  extra: dict[str, Any] | None = None) -> Consumer:
    config = client_config(settings) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": FETCH_WAIT_MS,
    }
    return Consumer(config | (extra or {}))


def take_available(consumer: Consumer, max_messages: int, wait_s: float) -> list[Message]:
    """Up to ``max_messages`` of what has already arrived; waits (up to ``wait_s``) only for the
    first one. ``Consumer.consume`` would wait for a full batch, holding a lone event back."""
    messages = consumer.consume(max_messages, 0)
    if not messages and wait_s > 0:
        messages = consumer.consume(1, wait_s)
        if messages and max_messages > 1:
            messages += consumer.consume(max_messages - 1, 0)
    return [m for m in messages if m.error() is None]


def delivering_partitions(consumer: Consumer, skip: Collection[tuple[str, int]] = ()) -> list[TopicPartition]:
    """The assigned partitions (less ``skip``) that have delivered a message: those safe to pause.

    Pausing or resuming a partition whose fetch start is still pending (just assigned, its
    committed offset being looked up) can leave it with no position and never fetched again:
    seen here as 3 of 12 orders never read by a worker in 240 s, and reported to librdkafka
    as issue 5591. A partition that has delivered has a valid position, so its fetcher runs.
    """
    assigned = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in skip]
    if not assigned:
        return []
    return [TopicPartition(tp.topic, tp.partition) for tp in consumer.position(assigned) if tp.offset >= 0]


def next_offsets(messages: Iterable[Message], into: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """(topic, partition) → the offset after the last of ``messages`` there (merged ``into``)."""
    offsets = into if into is not None else {}
    for message in messages:
        key = (message.topic() or "", message.partition() or 0)
        offsets[key] = max(offsets.get(key, 0), (message.offset() or 0) + 1)
    return offsets


# librdkafka's own timeouts on these calls are not always kept: send_offsets_to_transaction
# was seen blocked for minutes after a 20 s network cut between a worker and its broker, with
# the broker back (librdkafka issues 5456 and 5511, open in 2.16). Each call runs on a helper
# thread (the client releases the GIL while it waits) and is given up GRACE_S after its timeout.
SEND_OFFSETS_S, COMMIT_S, ABORT_S, GRACE_S = 30.0, 60.0, 30.0, 15.0


class TransactionStuck(KafkaError):
    """A transaction call outlived its own timeout: the producer is wedged."""


def bounded(call: Callable[[], None], timeout_s: float, what: str) -> None:
    """``call()`` (a transaction call given ``timeout_s``), raising :class:`TransactionStuck`
    when it has not returned GRACE_S later; its exceptions are raised here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    helper = threading.Thread(target=run, daemon=True, name=f"txn-{what}")
    helper.start()
    helper.join(timeout_s + GRACE_S)
    if helper.is_alive():
        raise TransactionStuck(f"{what} did not return within {timeout_s + GRACE_S:.0f}s (its timeout is {timeout_s:.0f}s)")
    if failure:
        raise failure[0]


def commit_consumed(producer: ReliableProducer, consumer: Consumer, messages: list[Message],
                    produce: Callable[[], None], *, owner: str,
                    also: dict[tuple[str, int], int] | None = None) -> bool:
    """The commit of consume–transform–produce: ``produce()`` writes the batch's outputs in a
    transaction that also carries the messages' next offsets for the consumer's group, and
    ``also``'s (offsets of earlier messages that had no outputs, committed late).

    True when committed. On an abortable error the transaction is aborted and the consumer
    rewound to its committed offsets, so the batch comes again: False. A fatal or fenced
    producer raises :class:`KafkaError` (the process ends; a restarted instance takes over).
    """
    offsets = next_offsets(messages, dict(also or {}))
    raw = producer.raw
    try:
        raw.begin_transaction()
        produce()
        bounded(lambda: raw.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                                        consumer.consumer_group_metadata(), SEND_OFFSETS_S),
                SEND_OFFSETS_S, "send_offsets_to_transaction")
        bounded(lambda: raw.commit_transaction(COMMIT_S), COMMIT_S, "commit_transaction")
        return True
    except TransactionStuck as exc:
        log.warning("%s: %s; replacing its producer, rewinding to committed offsets", owner, exc)
        producer.renew()
    except KafkaException as exc:
        error = exc.args[0]
        if error.fatal() or not error.txn_requires_abort() and not error.retriable():
            raise KafkaError(f"{owner} cannot continue: {error.str()}") from exc
        log.warning("%s aborts a batch (%s); rewinding to committed offsets", owner, error.str())
        try:
            bounded(lambda: raw.abort_transaction(ABORT_S), ABORT_S, "abort_transaction")
        except TransactionStuck as stuck:
            log.warning("%s: %s; replacing its producer", owner, stuck)
            producer.renew()
        except KafkaException as failed:
            raise KafkaError(f"{owner}: abort failed: {failed}") from failed
    assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    partitions = [TopicPartition(t, p) for (t, p) in offsets if (t, p) in assigned]
    for tp in committed_offsets(consumer, partitions, timeout_s=30):
        consumer.seek(tp)
    time.sleep(0.5)
    return False


def topic_end_offset(settings: KafkaSettings, topic: str) -> int:
    """The sum of ``topic``'s partitions' end offsets: every record (and transaction marker)
    ever written to it; checks that something was, or was not, published."""
    consumer = make_consumer(settings, f"billstream-end-offsets-{uuid.uuid4().hex[:8]}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def make_admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient(client_config(settings))


def wait_for_broker(settings: KafkaSettings, timeout_s: float | None = None) -> None:
    """Raise a one-line :class:`BrokerUnavailable` unless the cluster answers in time; a
    refused credential or an untrusted certificate is named as such, not as a timeout."""
    timeout = timeout_s if timeout_s is not None else settings.request_timeout_s
    refused: list[str] = []

    def on_error(error: RdKafkaError) -> None:
        if error.code() in (RdKafkaError._AUTHENTICATION, RdKafkaError.SASL_AUTHENTICATION_FAILED, RdKafkaError._SSL):
            refused.append(error.str())

    admin = AdminClient(client_config(settings) | {"error_cb": on_error})
    deadline = time.monotonic() + timeout
    while True:  # in short steps: a refused credential is reported at once, not after the timeout
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            if not refused and time.monotonic() < deadline:
                continue
            failure = exc
            break
    if refused:
        who = f" as {settings.sasl_username}" if settings.sasl_username else ""
        raise BrokerUnavailable(f"Kafka at {settings.bootstrap_servers} refused the connection{who}: "
                                f"{_first_line(refused[0])}") from failure
    raise BrokerUnavailable(
        f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:.0f}s; "
        "start it with `billstream infra up` or set BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS"
    ) from failure


def _first_line(text: str) -> str:
    """librdkafka's message, without its broker-thread prefix and any secret-free detail past one line."""
    line = text.splitlines()[0] if text else text
    return line.split("]: ", 1)[-1][:300]


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec], *,
                  replication_factor: int = 1, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    wait_for_broker(settings)
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [spec for spec in specs if spec.name not in existing]
    if not wanted:
        return []
    new_topics = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication_factor,
                 config=topic_config(spec) | replication_config(replication_factor))
        for spec in wanted
    ]
    created: list[str] = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == RdKafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaError(f"cannot create topic {name}: {exc}") from exc
    _await_leaders(admin, created, timeout_s)
    return created


def _await_leaders(admin: AdminClient, topics: list[str], timeout_s: float) -> dict[str, Any]:
    """The metadata of ``topics`` once every partition of each has a leader: a topic just
    created reaches the brokers' metadata asynchronously (KRaft), and a reader that looked
    it up before would see no partitions, or NOT_LEADER errors."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        except KafkaException as exc:
            raise BrokerUnavailable(f"cannot read the metadata of {', '.join(topics)}: {exc}") from exc
        pending = [name for name in topics if name not in metadata or metadata[name].error is not None
                   or not metadata[name].partitions
                   or any(p.leader < 0 for p in metadata[name].partitions.values())]
        if not pending:
            return {name: metadata[name] for name in topics}
        if time.monotonic() > deadline:
            raise KafkaError(f"no leader for every partition after {timeout_s:.0f}s (or no such topic): "
                             f"{', '.join(pending)}")
        time.sleep(0.1)


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """The broker-side config of a topic as created here."""
    config: dict[str, str] = {}
    if spec.compacted:
        config["cleanup.policy"] = "compact,delete" if spec.retention_ms is not None else "compact"
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return config


def replication_config(replication_factor: int) -> dict[str, str]:
    """With three or more replicas an acks=all write needs two in sync: one broker may die
    without losing an acknowledged bill, and a second loss stops writes instead of data."""
    return {"min.insync.replicas": "2"} if replication_factor >= 3 else {}


def partition_count(settings: KafkaSettings, topic: str, timeout_s: float = 10.0) -> int:
    """Waits up to ``timeout_s`` for a topic created a moment ago (maybe by another process)."""
    try:
        return len(_await_leaders(make_admin(settings), [topic], timeout_s)[topic].partitions)
    except BrokerUnavailable:
        raise
    except KafkaError as exc:
        if _not_authorized(settings, topic):
            who = f" {settings.sasl_username}" if settings.sasl_username else " this client"
            raise KafkaError(f"topic {topic}: not authorized for{who} (its ACLs do not allow it)") from exc
        raise KafkaError(f"topic {topic} does not exist") from exc


def _not_authorized(settings: KafkaSettings, topic: str) -> bool:
    """Whether the cluster hides ``topic`` from this principal (metadata lists only what it may see)."""
    try:
        found = make_admin(settings).list_topics(topic=topic, timeout=5).topics.get(topic)
    except KafkaException:
        return False
    return found is not None and found.error is not None and \
        found.error.code() == RdKafkaError.TOPIC_AUTHORIZATION_FAILED
