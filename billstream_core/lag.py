"""Consumer lag per assigned partition, from librdkafka's statistics (``stats_cb``): the
broker's high-water (or, read_committed, last stable) offset less the consumer's position,
with no extra requests to the broker."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# how often librdkafka reports; the lag metric is this stale at most
STATS_INTERVAL_MS = 5_000


class ConsumerLag(Collector):
    """Give :meth:`consumer_config` to the consumer; register this on a metrics registry."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._lag: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def consumer_config(self) -> dict[str, Any]:
        return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": self.on_stats}

    def on_stats(self, raw: str) -> None:
        stats = json.loads(raw)
        lag: dict[tuple[str, int], int] = {}
        for topic, entry in stats.get("topics", {}).items():
            for partition in entry.get("partitions", {}).values():
                # offsets are committed inside transactions, which librdkafka does not see, so
                # its consumer_lag (from the committed offset) stays -1: the lag from the
                # position the application consumed to is the one that moves
                number = int(partition.get("partition", -1))
                value = int(partition.get("consumer_lag_stored", -1))
                if value < 0:
                    value = int(partition.get("consumer_lag", -1))
                # -1: the internal UA partition, or one not assigned (no position, no lag)
                if number >= 0 and value >= 0 and partition.get("fetch_state") not in ("none", "stopped"):
                    lag[(topic, number)] = value
        with self._lock:
            self._lag = lag

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._lag)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("billstream_consumer_lag", "messages not yet consumed, per assigned partition",
                                  labels=["group", "topic", "partition"])
        for (topic, partition), value in sorted(self.snapshot().items()):
            gauge.add_metric([self.group, topic, str(partition)], value)
        yield gauge
