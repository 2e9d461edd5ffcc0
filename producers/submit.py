"""Submit one bill: upload the image to MinIO under its sha256, then publish the event.

Upload happens first; if it fails nothing is published and the caller gets the error, so
an event never points at bytes that are not there.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from billstream_core.clock import now_ms
from billstream_core.errors import BillstreamError
from billstream_core.kafka import ReliableProducer
from billstream_core.media import sniff_content_type
from billstream_core.order_numbers import new_order_number, validate_order_number
from billstream_core.serde import codec
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore, StoredObject

audit = logging.getLogger("billstream.audit")  # who sent which bill: one line per order announced


class EmptyImage(BillstreamError):
    code = "EMPTY_OBJECT"


@dataclass(frozen=True)
class Submission:
    order_number: str
    image: StoredObject


@dataclass(frozen=True)
class StagedBill:
    """A bill whose image is stored and whose order number is set, not yet announced."""
    order_number: str
    image: StoredObject
    attributes: dict[str, str]
    submitted_by: str | None = None  # who asked (an API key); None: the submitter's own principal


def kafka_principal(settings: Settings) -> str:
    """This process's Kafka principal, as the brokers' ACLs name it."""
    return f"User:{settings.kafka.sasl_username}" if settings.kafka.sasl_username else "User:ANONYMOUS"


class BillSubmitter:
    def __init__(self, settings: Settings, *, store: ObjectStore | None = None,
                 producer: ReliableProducer | None = None, source: str = "cli") -> None:
        self.settings = settings
        self.principal = kafka_principal(settings)
        self.store = store or ObjectStore(settings.storage)
        self.producer = producer or ReliableProducer(settings.kafka)
        self.source = source
        self._codec = codec("BillSubmitted")

    def submit(self, image: bytes | Path, *, order_number: str | None = None,
               attributes: Mapping[str, str] | None = None, flush: bool = True,
               on_delivery: Callable[[str | None], None] | None = None) -> Submission:
        """Store and announce one bill; returns its order number. ``flush=False`` batches;
        ``on_delivery(error)`` hears whether the broker took the event (None) or not."""
        return self.publish(self.stage(image, order_number=order_number, attributes=attributes), flush=flush,
                            on_delivery=on_delivery)

    def stage(self, image: bytes | Path, *, order_number: str | None = None,
              attributes: Mapping[str, str] | None = None, submitted_by: str | None = None) -> StagedBill:
        """The first half of :meth:`submit`: checks and stores the image, announces nothing
        (a load generator stages its bills before its clock starts, as clients on other
        machines would)."""
        data = image.read_bytes() if isinstance(image, Path) else image
        if not data:
            raise EmptyImage("the image is empty (0 bytes)")
        if len(data) > self.settings.limits.max_image_bytes:
            raise BillstreamError(f"the image is {len(data)} bytes, over the "
                                  f"{self.settings.limits.max_image_bytes} byte limit", code="IMAGE_TOO_LARGE")
        number = validate_order_number(order_number) if order_number else new_order_number()
        return StagedBill(number, self.store.put(data, sniff_content_type(data)), dict(attributes or {}), submitted_by)

    def publish(self, staged: StagedBill, *, flush: bool = True,
                on_delivery: Callable[[str | None], None] | None = None) -> Submission:
        """The second half of :meth:`submit`: the event, stamped with the time it is sent."""
        stored = staged.image
        event = {
            "schema_version": self._codec.version,
            "order_number": staged.order_number,
            "submitted_at_ms": now_ms(),
            "image": {"bucket": stored.bucket, "key": stored.key, "sha256": stored.sha256,
                      "size_bytes": stored.size_bytes, "content_type": stored.content_type},
            "source": self.source,
            "attributes": staged.attributes,
            "submitted_by": staged.submitted_by or self.principal,
        }
        self.producer.produce(self.settings.topics.submitted, self._codec.encode(event), key=staged.order_number,
                              on_delivery=on_delivery)
        audit.info("order %s (image %s) submitted by %s", staged.order_number, stored.sha256, event["submitted_by"],
                   extra={"order_number": staged.order_number, "image_sha256": stored.sha256,
                          "principal": event["submitted_by"]})
        if flush:
            self.producer.flush()
        return Submission(staged.order_number, stored)

    def flush(self) -> None:
        self.producer.flush()
