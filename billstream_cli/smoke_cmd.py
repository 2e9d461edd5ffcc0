"""`billstream smoke`: one real round trip through MinIO and Kafka.

Brings the local stack up (unless --no-infra), renders a small bill image, submits it
(upload, then BillSubmitted), reads the event back from the topic and the bytes back from
MinIO, and checks both agree. Exit 0 only when the round trip holds.
"""
from __future__ import annotations

import argparse
import json
import time
import uuid

from billstream_core.errors import BillstreamError
from billstream_core.group import subscribe
from billstream_core.kafka import make_consumer, wait_for_broker
from billstream_core.serde import codec
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore, sha256_hex
from infra.stack import LocalStack
from producers.samples import render_bill
from producers.submit import BillSubmitter


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("smoke", help="bring the stack up and run one submit round trip")
    parser.add_argument("--no-infra", action="store_true", help="use an already running Kafka/MinIO")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the event")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not args.no_infra:
        LocalStack(settings).up()
    wait_for_broker(settings.kafka)
    image = render_bill(["BILLSTREAM MART", f"ORDER {uuid.uuid4().hex[:8].upper()}", "TOTAL 12.50"])
    started = time.monotonic()
    submission = BillSubmitter(settings, source="smoke").submit(image, attributes={"purpose": "smoke"})
    consumer = make_consumer(settings.kafka, f"billstream-smoke-{uuid.uuid4().hex}")
    decoder = codec("BillSubmitted")
    event = None
    try:
        subscribe(consumer, [settings.topics.submitted])
        deadline = time.monotonic() + args.timeout
        while event is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.key() == submission.order_number.encode():
                event = decoder.decode(message.value())
    finally:
        consumer.close()
    if event is None:
        raise BillstreamError(f"the BillSubmitted event for {submission.order_number} did not come back "
                              f"within {args.timeout:.0f}s")
    stored = ObjectStore(settings.storage).get(event["image"]["key"])
    ok = sha256_hex(stored) == event["image"]["sha256"] == sha256_hex(image)
    summary = {"order_number": submission.order_number, "sha256": submission.image.sha256,
               "bytes": len(image), "round_trip_s": round(time.monotonic() - started, 3), "ok": ok}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"smoke: order {summary['order_number']} -> MinIO {settings.storage.bucket}/{summary['sha256'][:12]}… "
              f"-> {settings.topics.submitted} -> read back in {summary['round_trip_s']}s: "
              f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1
