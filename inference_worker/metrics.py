"""The worker's Prometheus metrics, in a registry of its own (tests run several workers in one
process). Exposed by :class:`billstream_core.probes.ProbeServer`."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector

from billstream_core.lag import ConsumerLag

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WorkerMetrics:
    def __init__(self, group: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.bills = Counter("billstream_worker_bills", "results committed, by status and error code",
                             ["status", "error_code"], registry=r)
        self.dead_letters = Counter("billstream_worker_dead_letters", "events sent to the dead-letter topic",
                                    registry=r)
        self.transactions = Counter("billstream_worker_transactions", "Kafka transactions, by outcome",
                                    ["outcome"], registry=r)
        self.batch_pages = Histogram("billstream_worker_engine_batch_pages", "pages in one engine call",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.batch_seconds = Histogram("billstream_worker_engine_batch_seconds", "wall time of one engine call",
                                       buckets=_SECONDS, registry=r)
        self.fetch_seconds = Histogram("billstream_worker_fetch_seconds", "one image's fetch from object storage",
                                       buckets=_SECONDS, registry=r)
        self.decode_seconds = Histogram("billstream_worker_decode_seconds", "one image's decode and checks",
                                        buckets=_SECONDS, registry=r)
        self.model = Info("billstream_model", "the model this worker serves", registry=r)
        ProcessCollector(registry=self.registry)  # resident memory and CPU seconds: sizes the pods
        self.lag = ConsumerLag(group)
        r.register(self.lag)

    def describe_model(self, name: str, version: str, **labels: str) -> None:
        self.model.info({"name": name, "version": version, **labels})

    def committed(self, outputs: list[dict[str, Any]], dead_letters: int) -> None:
        self.transactions.labels("commit").inc()
        for result in outputs:
            self.bills.labels(result["status"], result.get("error_code") or "").inc()
        if dead_letters:
            self.dead_letters.inc(dead_letters)

    def prepared(self, fetch_ms: float, decode_ms: float) -> None:
        self.fetch_seconds.observe(fetch_ms / 1000)
        if decode_ms:
            self.decode_seconds.observe(decode_ms / 1000)
