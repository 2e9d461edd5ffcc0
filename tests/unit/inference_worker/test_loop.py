"""The worker loop's decisions with in-memory stand-ins for Kafka: what a batch commits,
what an undecodable event becomes, what an aborted commit leaves behind, and what a
partition revoked under a batch does to it."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from billstream_core import kafka
from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings
from inference_worker import results
from inference_worker.handler import EngineBatch
from inference_worker.loop import ENGINE_BATCH_MS, ENGINE_BATCH_PAGES, InferenceWorker, _Batch
from tests.support.fakes import FakeConsumer, FakeMessage, FakeTransactions

ORDER = "01KBTM3Q4W9X2E7H5J8N6R0S1V"


class NoHandler:
    """The loop's handler is not reached by these decisions; its engine names the results."""

    class engine:  # noqa: N801 - stands in for an attribute holding an engine
        name, version = "fake-ocr", "v-test"


def settings() -> Settings:
    return load_settings(topics={"work": "w", "results": "r", "dead_letter": "dlq"})


def worker(producer: FakeTransactions, consumer: FakeConsumer | None = None) -> InferenceWorker:
    return InferenceWorker(settings(), NoHandler(), instance_id="unit",  # type: ignore[arg-type]
                           consumer=consumer or FakeConsumer(), producer=producer)  # type: ignore[arg-type]


def engine_done(records: list[dict[str, Any]]) -> Future[EngineBatch]:
    future: Future[EngineBatch] = Future()
    future.set_result(EngineBatch(records, len(records), 12.5))
    return future


def recognized(order: str) -> dict[str, Any]:
    return results.recognized(order, "ab" * 32, [], "TOTAL", model_name="fake-ocr", model_version="v-test",
                              timings_ms={}, warnings=[], submitted_at_ms=1)


def test_an_undecodable_event_is_dead_lettered_and_its_order_still_gets_a_result() -> None:
    loop = worker(FakeTransactions())
    good_key = FakeMessage("w", 0, 7, ORDER.encode(), b"not avro")
    no_key = FakeMessage("w", 0, 8, b"??", b"\xc3\x01garbage")
    events, failures, dead = loop._decode([good_key, no_key])  # type: ignore[list-item]
    assert events == []
    assert [(f["order_number"], f["error_code"]) for f in failures] == [(ORDER, "UNDECODABLE_EVENT")]
    assert [m.offset() for m, _ in dead] == [7, 8] and all(reason for _, reason in dead)


def test_a_batch_commits_its_results_dead_letters_and_next_offsets_in_one_transaction() -> None:
    producer = FakeTransactions()
    loop = worker(producer)
    messages: list[Any] = [FakeMessage("w", 1, 40, ORDER.encode(), b"x"), FakeMessage("w", 1, 41, b"B", b"y")]
    batch = _Batch(messages, dead=[(messages[1], "undecodable")], engine=engine_done([recognized(ORDER)]))
    assert loop._commit(batch, loop._outputs(batch)) is True
    (written,) = producer.committed
    assert [(topic, key) for topic, _, key, _ in written] == [("r", ORDER), ("dlq", b"B")]
    assert codec("BillResult").decode(written[0][1])["order_number"] == ORDER
    assert producer.headers[0] == {ENGINE_BATCH_PAGES: "1", ENGINE_BATCH_MS: "12.50"}
    (offsets,) = producer.offsets
    assert [(tp.topic, tp.partition, tp.offset) for tp in offsets] == [("w", 1, 42)]  # the *next* offset
    assert (loop.stats.batches, loop.stats.results, loop.stats.dead_letters) == (1, 1, 1)
    sample = loop.metrics.registry.get_sample_value
    assert sample("billstream_worker_bills_total", {"status": "RECOGNIZED", "error_code": ""}) == 1
    assert sample("billstream_worker_dead_letters_total") == 1
    assert sample("billstream_worker_transactions_total", {"outcome": "commit"}) == 1
    assert sample("billstream_worker_engine_batch_pages_count") == 1


def test_an_aborted_commit_leaves_nothing_and_rewinds_to_the_committed_offsets() -> None:
    producer = FakeTransactions(fail_commits=1)
    consumer = FakeConsumer(assigned=[TopicPartition("w", 1)], committed={("w", 1): 40})
    loop = worker(producer, consumer)
    messages: list[Any] = [FakeMessage("w", 1, 40, ORDER.encode(), b"x")]
    batch = _Batch(messages, engine=engine_done([recognized(ORDER)]))
    assert loop._commit(batch, loop._outputs(batch)) is False
    assert producer.committed == [] and producer.aborted == 1
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.seeks] == [("w", 1, 40)]  # the batch comes again
    assert (loop.stats.aborts, loop.stats.results) == (1, 0)
    sample = loop.metrics.registry.get_sample_value
    assert sample("billstream_worker_transactions_total", {"outcome": "abort"}) == 1
    assert sample("billstream_worker_bills_total", {"status": "RECOGNIZED", "error_code": ""}) is None


def test_a_batch_holding_a_revoked_partition_is_dropped_and_what_is_still_ours_rewound() -> None:
    """A zombie wakes with a batch of a partition the group gave away (w/1) and has since
    been given w/1 back: nothing commits, and both partitions the batches and held messages
    touch are rewound to their committed offsets, so each message comes again exactly once."""
    producer = FakeTransactions()
    consumer = FakeConsumer(assigned=[TopicPartition("w", 1), TopicPartition("w", 2), TopicPartition("w", 3)],
                            committed={("w", 1): 40, ("w", 2): 70, ("w", 3): 9})
    loop = worker(producer, consumer)
    in_flight = _Batch([FakeMessage("w", 1, 41, ORDER.encode(), b"x")],  # type: ignore[list-item]
                       engine=engine_done([recognized(ORDER)]))
    following = _Batch([FakeMessage("w", 2, 72, b"B", b"y")])  # type: ignore[list-item]
    loop._held = [FakeMessage("w", 2, 73, b"C", b"z"), FakeMessage("w", 3, 9, b"D", b"z")]  # type: ignore[list-item]
    loop._on_revoke(consumer, [TopicPartition("w", 1)])  # type: ignore[arg-type]
    assert loop._discard_revoked(in_flight, following) is True
    assert sorted((tp.partition, tp.offset) for tp in consumer.seeks) == [(1, 40), (2, 70)]
    assert [m.partition() for m in loop._held] == [3]  # untouched: its position is past it
    assert producer.committed == [] and loop.stats.discarded == 1
    assert loop._discard_revoked(None, None) is False  # the revocation is dealt with once


def test_a_held_message_of_a_revoked_partition_taken_in_the_revoking_poll_is_dropped_and_rewound() -> None:
    """A poll can hand over a message fetched before the revocation it served: held after the
    purge, it would be read twice once the partition comes back."""
    consumer = FakeConsumer(assigned=[TopicPartition("w", 1), TopicPartition("w", 2)],
                            committed={("w", 1): 40, ("w", 2): 70})
    loop = worker(FakeTransactions(), consumer)
    loop._on_revoke(consumer, [TopicPartition("w", 1)])  # type: ignore[arg-type]
    loop._held = [FakeMessage("w", 1, 44, b"A", b"x"), FakeMessage("w", 2, 71, b"B", b"y")]  # type: ignore[list-item]
    following = _Batch([FakeMessage("w", 2, 70, b"C", b"z")])  # type: ignore[list-item]
    assert loop._discard_revoked(None, following) is False  # the batch is not the revoked partition's
    assert [(tp.partition, tp.offset) for tp in consumer.seeks] == [(1, 40)]
    assert [m.partition() for m in loop._held] == [2] and loop.stats.discarded == 0


def test_a_revocation_that_touches_neither_batch_changes_nothing() -> None:
    consumer = FakeConsumer(assigned=[TopicPartition("w", 2)], committed={("w", 2): 70})
    loop = worker(FakeTransactions(), consumer)
    loop._held = [FakeMessage("w", 5, 3, b"A", b"x"), FakeMessage("w", 2, 71, b"B", b"y")]  # type: ignore[list-item]
    loop._on_revoke(consumer, [TopicPartition("w", 5)])  # type: ignore[arg-type]
    assert [m.partition() for m in loop._held] == [2]  # the revoked partition's held message went with it
    assert loop._discard_revoked(_Batch([FakeMessage("w", 2, 70, b"A", b"x")]), None) is False  # type: ignore[list-item]
    assert consumer.seeks == [] and loop.stats.discarded == 0


def test_a_transaction_call_stuck_past_its_timeout_renews_the_producer_and_rewinds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka can leave send_offsets_to_transaction blocked past its own timeout (seen
    after a network cut): the batch is given up, a new producer fences the stuck one, and
    the batch comes again from the committed offsets."""
    monkeypatch.setattr(kafka, "SEND_OFFSETS_S", 0.05)
    monkeypatch.setattr(kafka, "GRACE_S", 0.05)
    producer = FakeTransactions(stuck_sends=1)
    consumer = FakeConsumer(assigned=[TopicPartition("w", 1)], committed={("w", 1): 40})
    loop = worker(producer, consumer)
    batch = _Batch([FakeMessage("w", 1, 40, ORDER.encode(), b"x")],  # type: ignore[list-item]
                   engine=engine_done([recognized(ORDER)]))
    try:
        assert loop._commit(batch, loop._outputs(batch)) is False
        assert producer.renewed == 1 and producer.committed == []
        assert [(tp.partition, tp.offset) for tp in consumer.seeks] == [(1, 40)]
        assert loop._commit(batch, loop._outputs(batch)) is True  # the renewed producer commits it
        assert len(producer.committed) == 1
    finally:
        producer.released.set()
