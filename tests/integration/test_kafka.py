"""Avro events through a real multi-partition topic on the session's broker."""
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
from confluent_kafka.admin import ConfigResource

from billstream_core.group import subscribe
from billstream_core.kafka import (
    ReliableProducer,
    delivering_partitions,
    ensure_topics,
    key_partition,
    make_admin,
    make_consumer,
    partition_count,
)
from billstream_core.serde import codec
from billstream_core.settings import Settings
from stream_app import records
from stream_app.changelogs import RecognisedImages, restore_partitions
from stream_app.router import router_topics
from stream_app.state import INDEX, PartitionedState, StateStore


def event(order_number: str) -> dict:
    return {
        "schema_version": 1, "order_number": order_number, "submitted_at_ms": 1_700_000_000_000,
        "image": {"bucket": "bills", "key": "cd" * 32, "sha256": "cd" * 32, "size_bytes": 10,
                  "content_type": "image/png"},
        "source": "test", "attributes": {},
    }


def fill_partitions(services: Settings, topic: str, partitions: tuple[int, ...], count: int) -> ReliableProducer:
    """``count`` records (``p{partition}-{i}``) in each of ``partitions``; returns the producer."""
    producer = ReliableProducer(services.kafka)
    for partition in partitions:
        for i in range(count):
            producer.produce(topic, f"p{partition}-{i}".encode(), key=f"k{i}", partition=partition)
    producer.flush()
    return producer


def test_topics_from_settings_have_their_partition_counts(services: Settings) -> None:
    for spec in services.topics.all():
        assert partition_count(services.kafka, spec.name) == spec.partitions


def test_router_changelogs_are_compacted_and_the_orders_one_forgets_old_orders(
        services: Settings, unique: Callable[[str], str]) -> None:
    stream = services.stream.model_copy(update={"app_id": unique("retention"), "order_memory_days": 7.0})
    settings = services.model_copy(update={"stream": stream})
    topics = router_topics(settings)
    ensure_topics(settings.kafka, [topics.images, topics.orders])
    admin = make_admin(settings.kafka)
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in (topics.images, topics.orders)])
    configs = {resource.name: {k: v.value for k, v in future.result(10).items()} for resource, future in futures.items()}
    assert configs[topics.images.name]["cleanup.policy"] == "compact"
    assert configs[topics.orders.name]["cleanup.policy"] == "compact,delete"
    assert configs[topics.orders.name]["retention.ms"] == str(7 * 86_400_000)


def test_avro_events_round_trip_across_partitions_keyed_by_order(
        services: Settings, make_topic: Callable[..., str], unique: Callable[[str], str]) -> None:
    topic = make_topic(partitions=4)
    assert partition_count(services.kafka, topic) == 4
    c = codec("BillSubmitted")
    producer = ReliableProducer(services.kafka)
    orders = [f"ORD-{i:03d}" for i in range(40)]
    for number in orders:
        producer.produce(topic, c.encode(event(number)), key=number)
    producer.flush()
    assert producer.delivered == len(orders)

    consumer = make_consumer(services.kafka, unique("group"))
    consumer.subscribe([topic])
    seen: dict[str, int] = {}
    try:
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is None or message.error():
                if len(seen) == len(orders):
                    break
                continue
            decoded = c.decode(message.value())
            assert decoded["order_number"] == (message.key() or b"").decode()
            assert seen.setdefault(decoded["order_number"], message.partition() or 0) == (message.partition() or 0)
    finally:
        consumer.close()
    assert sorted(seen) == orders
    assert len(set(seen.values())) > 1, "keys should spread over several partitions"
    # the router decides from key_partition whether it owns a key's partition: it must agree with the producer
    assert {number: key_partition(number.encode(), 4) for number in orders} == seen


def test_read_committed_consumer_does_not_see_aborted_transactions(
        services: Settings, make_topic: Callable[..., str], unique: Callable[[str], str]) -> None:
    topic = make_topic(partitions=2)
    c = codec("BillSubmitted")
    producer = ReliableProducer(services.kafka, transactional_id=unique("tx"))
    raw = producer.raw
    raw.init_transactions(30)
    raw.begin_transaction()
    producer.produce(topic, c.encode(event("ABORTED")), key="ABORTED")
    raw.abort_transaction(30)
    raw.begin_transaction()
    producer.produce(topic, c.encode(event("COMMITTED")), key="COMMITTED")
    raw.commit_transaction(30)

    consumer = make_consumer(services.kafka, unique("group"), read_committed=True)
    consumer.subscribe([topic])
    keys = []
    try:
        for _ in range(30):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                keys.append((message.key() or b"").decode())
            elif keys:
                break
    finally:
        consumer.close()
    assert keys == ["COMMITTED"]


def test_changelog_partitions_restore_together_without_aborted_or_deleted_entries(
        services: Settings, make_topic: Callable[..., str], unique: Callable[[str], str]) -> None:
    images, orders = make_topic(partitions=2), make_topic(partitions=2)
    producer = ReliableProducer(services.kafka, transactional_id=unique("tx"))
    raw = producer.raw
    raw.init_transactions(30)
    raw.begin_transaction()
    for n in range(300):  # each key written six times: only its last value may survive
        producer.produce(images, json.dumps({"n": n}).encode(), key=f"img-{n % 50}", partition=n % 2)
    producer.produce(images, None, key="img-1", partition=1)  # a tombstone
    producer.produce(orders, b'{"o": 1}', key="order-1", partition=0)
    raw.commit_transaction(30)
    raw.begin_transaction()
    producer.produce(images, b'{"n": -1}', key="img-aborted", partition=0)
    producer.produce(orders, b'{"o": -1}', key="order-1", partition=0)
    raw.abort_transaction(30)

    # markers are written after commit/abort return: the router waits for them through its
    # committed offsets (require_stable); here, until the last stable offsets reach the ends
    stable, anything = make_consumer(services.kafka, unique("probe")), make_consumer(services.kafka, unique("probe"), read_committed=False)
    deadline = time.monotonic() + 30
    while True:
        ends = [anything.get_watermark_offsets(TopicPartition(images, p), timeout=10)[1] for p in (0, 1)]
        if [stable.get_watermark_offsets(TopicPartition(images, p), timeout=10)[1] for p in (0, 1)] == ends:
            break
        assert time.monotonic() < deadline, "the transaction markers were never written"
        time.sleep(0.1)
    stable.close()
    anything.close()
    wanted = [(images, 0), (images, 1), (orders, 0), (orders, 1)]
    restored: dict[tuple[str, int], dict[str, object]] = {key: {} for key in wanted}

    def sink(topic: str, partition: int, batch: list[tuple[str, bytes | None]]) -> None:
        for key, value in batch:  # in order: a later record replaces, a tombstone removes
            if value is None:
                restored[(topic, partition)].pop(key, None)
            else:
                restored[(topic, partition)][key] = json.loads(value)

    marks = restore_partitions(services, wanted, sink)
    assert set(marks) == set(wanted)
    assert restored[(images, 0)] == {f"img-{k}": {"n": 250 + k} for k in range(0, 50, 2)}
    assert restored[(images, 1)] == {f"img-{k}": {"n": 250 + k} for k in range(3, 50, 2)}
    assert restored[(orders, 0)] == {"order-1": {"o": 1}} and restored[(orders, 1)] == {}
    assert [marks[(images, p)] for p in (0, 1)] == ends  # read up to the end, markers included


def test_the_recognised_images_view_adopts_restored_partitions_instead_of_reading_them_again(
        services: Settings, make_topic: Callable[..., str], tmp_path: Path) -> None:
    changelog = make_topic(partitions=2)
    producer = ReliableProducer(services.kafka)

    def write(sha: str, partition: int) -> None:
        entry = records.new_entry(f"order-{sha}", "v1")
        entry.update(state="done", result={"order_number": entry["lead"], "status": "RECOGNIZED", "error_code": None})
        producer.produce(changelog, json.dumps(entry).encode(), key=sha, partition=partition)

    for n in range(20):
        write(f"img-{n}", n % 2)
    producer.flush()
    store = StateStore(tmp_path / "state")
    index = PartitionedState(store, INDEX)
    index.adopt(0)
    end = restore_partitions(services, [(changelog, 0)], lambda _t, partition, batch: index.write(partition, batch))
    assert len(index) == 10
    write("late-0", 0)  # after the restore: the view must still see it
    producer.flush()
    view = RecognisedImages(services, changelog, model_version="v1", store=store)
    view.start({0: end[(changelog, 0)]})
    try:
        assert view.ready.wait(30)
        deadline = time.monotonic() + 30
        while view.get("late-0") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(view.get(f"img-{n}") is not None for n in range(20)) and view.get("late-0") is not None
        assert view.records_read == 10 + 1  # partition 1 from its start, partition 0 only past the restore
        assert len(view) == 21
    finally:
        view.stop()
        store.close()


def test_only_partitions_that_delivered_are_offered_for_pausing_and_a_paused_one_loses_nothing(
        services: Settings, make_topic: Callable[..., str], unique: Callable[[str], str]) -> None:
    """The worker pauses what ``delivering_partitions`` returns while its engine runs (the
    librdkafka race it avoids is in that function's docstring)."""
    topic = make_topic(partitions=4)
    fill_partitions(services, topic, (0, 1), 3)
    consumer = make_consumer(services.kafka, unique("group"), extra={"enable.partition.eof": False})
    subscribe(consumer, [topic])  # as the worker subscribes
    seen: list[str] = []
    try:
        assert delivering_partitions(consumer) == []  # nothing assigned yet
        while not seen:
            seen += [(m.value() or b"").decode() for m in consumer.consume(1, 0.5) if m.error() is None]
        first = int(seen[0][1])
        offered = {tp.partition for tp in delivering_partitions(consumer)}
        assert first in offered and offered <= {0, 1}  # the empty partitions 2 and 3 never delivered
        assert delivering_partitions(consumer, skip={(topic, first)}) == [
            tp for tp in delivering_partitions(consumer) if tp.partition != first]
        paused = delivering_partitions(consumer)
        consumer.pause(paused)
        for _ in range(4):  # what was fetched before the pause may still come: it is kept, as the worker does
            seen += [(m.value() or b"").decode() for m in consumer.consume(10, 0.2) if m.error() is None]
        consumer.resume(paused)
        for _ in range(40):
            if len(seen) >= 6:
                break
            seen += [(m.value() or b"").decode() for m in consumer.consume(10, 0.5) if m.error() is None]
    finally:
        consumer.close()
    assert sorted(seen) == [f"p{p}-{i}" for p in (0, 1) for i in range(3)]  # each once, none lost by the pause


def test_a_subscription_starts_each_partition_at_the_offset_it_looked_up(
        services: Settings, make_topic: Callable[..., str], unique: Callable[[str], str]) -> None:
    """Committed offsets are resumed, partitions without one start at the reset position, and
    prepare sees the same offsets the partitions are then assigned at."""
    topic = make_topic(partitions=2)
    producer = fill_partitions(services, topic, (0, 1), 5)
    group_id = unique("group")
    committer = make_consumer(services.kafka, group_id)
    committer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    committer.close()

    def first_offsets(consumer: Any, want: int) -> dict[int, int]:
        first: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(first) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                first.setdefault(message.partition(), message.offset())
        return first

    prepared: list[dict[int, int]] = []
    resuming = make_consumer(services.kafka, group_id)
    subscribe(resuming, [topic], prepare=lambda c, ps: prepared.append({tp.partition: tp.offset for tp in ps}))
    try:
        assert first_offsets(resuming, 2) == {0: 3, 1: 0}
    finally:
        resuming.close()
    assert prepared == [{0: 3, 1: OFFSET_BEGINNING}]

    latest = make_consumer(services.kafka, unique("group"), extra={"auto.offset.reset": "latest"})
    subscribe(latest, [topic], reset=OFFSET_END)
    try:
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:  # a new record every 2 s until one is read
            producer.produce(topic, b"new", key=b"k", partition=1)
            producer.flush()
            quiet_until = time.monotonic() + 2
            while not seen and time.monotonic() < quiet_until:
                message = latest.poll(0.2)
                if message is not None and message.error() is None:
                    seen[message.partition() or 0] = message.offset() or 0
        assert seen.get(1, -1) >= 5, seen  # a new record, and none of the five older ones
    finally:
        latest.close()
