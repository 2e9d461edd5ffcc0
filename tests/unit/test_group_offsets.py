"""The offset lookup every group consumer's assignment goes through (no broker: a fake consumer)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from billstream_core import group
from billstream_core.errors import KafkaError
from billstream_core.group import committed_offsets, subscribe


class FakeConsumer:
    """Answers ``committed`` from a script: an exception to raise, or offsets per partition."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.lookups = 0
        self.assigned: list[TopicPartition] = []
        self.callbacks: dict[str, object] = {}

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.lookups += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        out = []
        for tp in partitions:
            offset = answer[tp.partition]  # type: ignore[index]
            if isinstance(offset, int):
                out.append(TopicPartition(tp.topic, tp.partition, offset))
            else:  # librdkafka's TopicPartition.error is read-only: a look-alike carries one
                out.append(SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=-1001,  # type: ignore[arg-type]
                                           error=offset))
        return out

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += partitions

    def subscribe(self, topics: list[str], **callbacks: object) -> None:
        self.callbacks = callbacks


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group, "RETRY_S", 0.0)


def parts(*numbers: int) -> list[TopicPartition]:
    return [TopicPartition("t", n) for n in numbers]


def offsets(found: list[TopicPartition]) -> dict[int, int]:
    return {tp.partition: tp.offset for tp in found}


def test_committed_offsets_are_kept_and_partitions_without_one_start_at_the_reset_position() -> None:
    consumer: Any = FakeConsumer({0: 7, 1: -1001})
    assert offsets(committed_offsets(consumer, parts(0, 1))) == {0: 7, 1: OFFSET_BEGINNING}
    assert offsets(committed_offsets(consumer, parts(0, 1), reset=OFFSET_END)) == {0: 7, 1: OFFSET_END}


def test_a_failed_lookup_is_retried_until_it_answers() -> None:
    not_coordinator = KafkaException(RdKafkaError(RdKafkaError.NOT_COORDINATOR))
    partition_error = RdKafkaError(RdKafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    consumer: Any = FakeConsumer(not_coordinator, {0: partition_error, 1: 2}, {0: 5, 1: 2})
    assert offsets(committed_offsets(consumer, parts(0, 1))) == {0: 5, 1: 2}
    assert consumer.lookups == 3


def test_a_lookup_that_never_answers_raises_instead_of_leaving_the_partition_unread() -> None:
    consumer: Any = FakeConsumer(KafkaException(RdKafkaError(RdKafkaError._TIMED_OUT)))
    with pytest.raises(KafkaError, match="committed offsets of 2 partition"):
        committed_offsets(consumer, parts(0, 1), timeout_s=0.05)
    assert consumer.lookups >= 1


def test_subscribe_assigns_explicit_offsets_after_prepare_has_seen_them() -> None:
    consumer: Any = FakeConsumer({0: 3, 1: -1001})
    seen: list[dict[int, int]] = []
    subscribe(consumer, ["t"], prepare=lambda c, ps: seen.append(offsets(ps)))  # type: ignore[arg-type]
    on_assign = consumer.callbacks["on_assign"]
    on_assign(consumer, parts(0, 1))  # type: ignore[operator]
    assert seen == [{0: 3, 1: OFFSET_BEGINNING}]
    assert offsets(consumer.assigned) == {0: 3, 1: OFFSET_BEGINNING}


def test_a_revoked_or_lost_partition_is_resumed_before_it_goes() -> None:
    """librdkafka keeps a pause across unassignment: a paused partition lost and assigned
    again would never be fetched."""
    consumer: Any = FakeConsumer({0: 3})
    consumer.resumed = []
    consumer.resume = consumer.resumed.extend
    seen: list[tuple[int, ...]] = []
    subscribe(consumer, ["t"], on_revoke=lambda c, ps: seen.append(tuple(consumer.resumed)))
    for callback in ("on_revoke", "on_lost"):
        consumer.resumed.clear()
        consumer.callbacks[callback](consumer, parts(0, 2))  # type: ignore[operator]
        assert offsets(consumer.resumed) == {0: -1001, 2: -1001}
    assert len(seen) == 2 and all(len(s) == 2 for s in seen)  # on_revoke ran after the resume


def test_no_lookup_for_an_empty_assignment() -> None:
    consumer: Any = FakeConsumer(KafkaException(RdKafkaError(RdKafkaError._TIMED_OUT)))
    assert committed_offsets(consumer, []) == []
    assert consumer.lookups == 0
