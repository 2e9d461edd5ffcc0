"""The stream app's Prometheus metrics: read from the router's counters and the tables at
scrape time (nothing on the routing path does metric work), plus the results the app saw."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from stream_app.router import ImageRouter


class RouterCollector(Collector):
    def __init__(self, router: ImageRouter, table_size: Callable[[], int]) -> None:
        self.router = router
        self.table_size = table_size

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.router.stats)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield counter("billstream_router_routed", "new images sent to the workers", stats["routed_new"])
        cache = CounterMetricFamily("billstream_cache_answers", "orders answered from the cache of recognised images",
                                    labels=["hop"])
        cache.add_metric(["first"], stats["answered_first_hop"])  # the submission's own partition knew the image
        # the image's partition did (answered_from_cache counts both hops)
        cache.add_metric(["image"], stats["answered_from_cache"] - stats["answered_first_hop"])
        yield cache
        yield counter("billstream_single_flight_waits",
                      "orders of an image already being recognised, answered when its result lands", stats["waiting"])
        yield counter("billstream_router_repeats_dropped", "order numbers seen before, given no second result",
                      stats["dropped_repeats"])
        transactions = CounterMetricFamily("billstream_router_transactions", "router transactions, by outcome",
                                           labels=["outcome"])
        transactions.add_metric(["commit"], stats["transactions"] - stats["aborts"])
        transactions.add_metric(["abort"], stats["aborts"])
        yield transactions
        sizes = GaugeMetricFamily("billstream_state_entries", "entries held (on disk), by table or index",
                                  labels=["table"])
        sizes.add_metric(["image_index"], len(self.router.index))
        sizes.add_metric(["orders_seen"], len(self.router.orders))
        sizes.add_metric(["recognised_images"], len(self.router.recognised))
        sizes.add_metric(["orders_table"], self.table_size())
        yield sizes


class StreamMetrics:
    def __init__(self, router: ImageRouter | None, table_size: Callable[[], int], model_version: str) -> None:
        self.registry = CollectorRegistry()
        self.results = Counter("billstream_stream_results", "results the orders table took in, by status and error code",
                               ["status", "error_code"], registry=self.registry)
        Info("billstream_model", "the model version whose results the router caches",
             registry=self.registry).info({"version": model_version})
        ProcessCollector(registry=self.registry)  # resident memory and CPU seconds: sizes the pods
        if router is not None:
            self.registry.register(RouterCollector(router, table_size))
            self.registry.register(router.lag)
