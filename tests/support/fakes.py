"""In-memory stand-ins for confluent-kafka's messages, consumer and transactional producer,
for unit tests of the router's and the worker's decisions: no broker, seconds to run."""
from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException

Written = tuple[str, bytes | None, Any, int | None]


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        self._fields = topic, partition, offset, key, value, headers

    def topic(self) -> str:
        return self._fields[0]

    def partition(self) -> int:
        return self._fields[1]

    def offset(self) -> int:
        return self._fields[2]

    def key(self) -> bytes | None:
        return self._fields[3]

    def value(self) -> bytes:
        return self._fields[4]

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._fields[5]

    def error(self) -> None:
        return None


class FakeTransactions:
    """The transactional producer's calls, recording what each committed transaction wrote;
    ``fail_commits`` commits in a row fail with an abortable error, as a broker's would."""

    def __init__(self, fail_commits: int = 0, stuck_sends: int = 0) -> None:
        self.open: list[Written] | None = None
        self.committed: list[list[Written]] = []
        self.offsets: list[list[Any]] = []
        self.headers: list[Any] = []
        self.aborted = 0
        self.fail_commits = fail_commits
        self.stuck_sends = stuck_sends  # send_offsets_to_transaction calls that never return (until released)
        self.released = threading.Event()
        self.renewed = 0

    def renew(self) -> None:
        """A fresh producer fences this one: its open transaction is aborted."""
        self.renewed += 1
        self.open = None

    @property
    def raw(self) -> FakeTransactions:
        return self

    def begin_transaction(self) -> None:
        self.open = []

    def produce(self, topic: str, value: bytes | None, key: Any = None, headers: Any = None,
                partition: int | None = None) -> None:
        assert self.open is not None, "produce outside a transaction"
        self.open.append((topic, value, key, partition))
        self.headers.append(headers)

    def send_offsets_to_transaction(self, offsets: list[Any], metadata: Any, timeout: float) -> None:
        if self.stuck_sends:
            self.stuck_sends -= 1
            self.released.wait()
            return
        self.offsets.append(offsets)

    def commit_transaction(self, timeout: float) -> None:
        assert self.open is not None
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaException(RdKafkaError(RdKafkaError._TIMED_OUT, "commit timed out", retriable=True))
        self.committed.append(self.open)
        self.open = None

    def abort_transaction(self, timeout: float) -> None:
        self.aborted += 1
        self.open = None


class FakeConsumer:
    """Group metadata for the transaction, an assignment, and the seeks of a rewind."""

    def __init__(self, assigned: list[Any] | None = None, committed: dict[tuple[str, int], int] | None = None) -> None:
        self.assigned = assigned or []
        self.committed_at = committed or {}
        self.seeks: list[Any] = []

    def consumer_group_metadata(self) -> object:
        return object()

    def assignment(self) -> list[Any]:
        return self.assigned

    def committed(self, partitions: list[Any], timeout: float | None = None) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(tp.topic, tp.partition, self.committed_at.get((tp.topic, tp.partition), 0))
                for tp in partitions]

    def seek(self, partition: Any) -> None:
        self.seeks.append(partition)


