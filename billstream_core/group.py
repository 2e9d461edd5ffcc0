"""Consumer-group subscriptions whose partitions start at offsets looked up here.

Assigned a partition without an offset, librdkafka looks its committed offset up itself.
When that lookup fails as a whole (NOT_COORDINATOR while a young broker's group
coordinator settles: librdkafka issue 5586, open in 2.16), the partition is never fetched
and nothing says so: its orders would wait until the process restarts. So every group
consumer here is assigned explicit offsets, from a lookup that is retried and, when it
cannot succeed, fails loudly.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from billstream_core.errors import KafkaError

log = logging.getLogger("billstream.group")

LOOKUP_TIMEOUT_S = 60.0
RETRY_S = 0.5

Rebalance = Callable[[Consumer, list[TopicPartition]], None]


def committed_offsets(consumer: Consumer, partitions: list[TopicPartition], *, reset: int = OFFSET_BEGINNING,
                      timeout_s: float = LOOKUP_TIMEOUT_S) -> list[TopicPartition]:
    """Each partition at its group's committed offset, or at ``reset`` (a logical offset:
    ``OFFSET_BEGINNING``, ``OFFSET_END``) where the group has none. A read_committed
    consumer's lookup asks for stable offsets, so offsets still pending in a previous
    owner's transaction are waited for (or retried here)."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    if not wanted:
        return []
    deadline = time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            found = consumer.committed(wanted, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in found if tp.error is not None]
            if not failed:
                if attempts > 1:
                    log.info("committed offsets read after %d attempts", attempts)
                return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else reset) for tp in found]
            problem = "; ".join(failed[:3])
        except KafkaException as exc:
            problem = str(exc.args[0] if exc.args else exc)
        if time.monotonic() >= deadline:
            raise KafkaError(f"cannot read the committed offsets of {len(wanted)} partition(s) "
                             f"in {timeout_s:.0f}s ({attempts} attempts): {problem}")
        log.warning("reading committed offsets failed, retrying: %s", problem)
        time.sleep(RETRY_S)


def subscribe(consumer: Consumer, topics: list[str], *, prepare: Rebalance | None = None,
              on_revoke: Rebalance | None = None, reset: int = OFFSET_BEGINNING,
              timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
    """Subscribe (cooperative rebalancing) so that each assigned partition starts at an offset
    read here. ``prepare`` sees the partitions with those offsets before they are assigned
    (state restored for them is then as of their committed offsets); ``on_revoke`` serves
    revoked and lost partitions alike; they are resumed first. An offset lookup that keeps failing raises from the
    consumer's poll: the process stops instead of silently never reading a partition."""

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        offsets = committed_offsets(c, partitions, reset=reset, timeout_s=timeout_s)
        if prepare is not None:
            prepare(c, offsets)
        c.incremental_assign(offsets)
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in offsets) or "nothing")

    def revoked(c: Consumer, partitions: list[TopicPartition]) -> None:
        # librdkafka keeps a partition's pause across its unassignment: paused when lost (a
        # worker waiting on its engine pauses a full batch's partitions), it came back paused
        # when assigned again and was never read (17 of 265 orders in the zombie fault case).
        # Resumed here, while still assigned, where resuming cannot strand its fetcher (5591).
        c.resume(partitions)
        if on_revoke is not None:
            on_revoke(c, partitions)

    consumer.subscribe(topics, on_assign=on_assign, on_revoke=revoked, on_lost=revoked)
