"""The API's Prometheus metrics, in a registry of its own (one per app, so tests and several
apps in one process do not collide)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("billstream_api_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.seconds = Histogram("billstream_api_request_seconds", "HTTP request seconds by route", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                 registry=self.registry)
        self.bills = Counter("billstream_api_bills_accepted", "bills accepted (202) by content type",
                             ["content_type"], registry=self.registry)
        self.bytes = Counter("billstream_api_bill_bytes_accepted", "bytes of the bills accepted",
                             registry=self.registry)
        self.refusals = Counter("billstream_api_refusals", "requests refused, by error code", ["code"],
                                registry=self.registry)
        ProcessCollector(registry=self.registry)  # resident memory and CPU seconds: sizes the pods
        self.info = Info("billstream_api", "the API's build", registry=self.registry)
        self.info.info({"api_version": "1"})
