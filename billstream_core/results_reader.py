"""The one reader of the results topic: read_committed, every partition assigned at once.

Readers of results want every order's result, not a share of a consumer group's, so the
partitions are assigned rather than subscribed: no group join, no committed offsets, and
no lookup that a young broker can fail. It starts at the beginning, or at the end as it
is when the reader is made (the partitions' high watermarks, looked up now, so that a
result that lands a moment later is never skipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from billstream_core.errors import DecodeError
from billstream_core.kafka import make_consumer, partition_count
from billstream_core.serde import codec
from billstream_core.settings import KafkaSettings


@dataclass(frozen=True)
class ResultMessage:
    """One record of the results topic: ``record`` decoded, or ``error`` saying why not."""

    message: Message
    record: dict[str, Any] | None
    error: str | None = None

    @property
    def order_number(self) -> str:
        return (self.message.key() or b"").decode("utf-8", "replace")


class ResultsReader:
    def __init__(self, settings: KafkaSettings, topic: str, *, start: Literal["beginning", "end"] = "beginning",
                 group_prefix: str = "billstream-results", timeout_s: float = 30.0) -> None:
        import uuid

        self.topic = topic
        self._decoder = codec("BillResult")
        self.consumer = make_consumer(settings, f"{group_prefix}-{uuid.uuid4().hex[:12]}", read_committed=True)
        partitions = range(partition_count(settings, topic, timeout_s))
        if start == "end":
            offsets = [self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                       for p in partitions]
        else:
            offsets = [OFFSET_BEGINNING] * len(partitions)
        self.partitions = len(offsets)
        self.consumer.assign([TopicPartition(topic, p, o) for p, o in zip(partitions, offsets)])

    def poll(self, timeout: float) -> ResultMessage | None:
        """The next record, or None when none arrived within ``timeout`` seconds."""
        message = self.consumer.poll(timeout)
        if message is None or message.error() is not None:
            return None
        try:
            return ResultMessage(message, self._decoder.decode(message.value()))
        except DecodeError as exc:
            return ResultMessage(message, None, str(exc))

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> ResultsReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
