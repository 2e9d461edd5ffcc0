"""Submitting uploaded bills through the same code as ``billstream submit``.

Storing runs in threads (the MinIO client blocks); publishing hands the event to librdkafka
and awaits the broker's acknowledgement, so a ``202`` means the event is durable. One
background thread serves every request's delivery reports.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from billstream_core.errors import BillstreamError, DeliveryError
from billstream_core.kafka import ReliableProducer
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore
from producers.submit import BillSubmitter, Submission

DELIVERY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BillToSubmit:
    data: bytes
    order_number: str
    attributes: Mapping[str, str]
    submitted_by: str  # the caller: its API key's id, or anonymous and its address


class AsyncSubmitter:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.producer = ReliableProducer(settings.kafka, extra={"message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000)})
        self.submitter = BillSubmitter(settings, store=store, producer=self.producer, source="api")
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self.producer.raw.poll(0.1)

    def close(self) -> None:
        self._running = False
        self._poller.join(5)
        self.producer.raw.flush(10)

    async def submit(self, bill: BillToSubmit) -> Submission:
        """Store, publish and await the broker; raises :class:`BillstreamError` on failure."""
        staged = await asyncio.to_thread(self.submitter.stage, bill.data, order_number=bill.order_number,
                                         attributes=bill.attributes, submitted_by=bill.submitted_by)
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[str | None] = loop.create_future()

        def settle(error: str | None) -> None:
            if not delivered.done():
                delivered.set_result(error)

        def report(error: str | None) -> None:
            loop.call_soon_threadsafe(settle, error)

        submission = self.submitter.publish(staged, flush=False, on_delivery=report)
        try:
            error = await asyncio.wait_for(delivered, DELIVERY_TIMEOUT_S + 5)
        except TimeoutError as exc:
            raise DeliveryError("Kafka did not acknowledge the event in time") from exc
        if error is not None:
            raise DeliveryError(f"Kafka refused the event: {error}")
        return submission


def failure_status(exc: BillstreamError) -> int:
    """The HTTP status of a failure after the request was accepted for processing."""
    if exc.code == "STORAGE_FULL":
        return 507  # Insufficient Storage: not worth an immediate retry, unlike 503
    return 400 if exc.code in {"INVALID_ORDER_NUMBER", "EMPTY_OBJECT", "IMAGE_TOO_LARGE"} else 503
