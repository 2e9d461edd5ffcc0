"""Submitting and backfilling against the real services."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from billstream_core.errors import StorageUnavailable
from billstream_core.kafka import make_consumer
from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings, settings_env
from billstream_core.storage import ObjectStore
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.pipeline import isolated_settings


def submitted_events(settings: Settings, expected: int, timeout: float = 30) -> list[dict]:
    import time

    decoder = codec("BillSubmitted")
    consumer = make_consumer(settings.kafka, f"check-{uuid.uuid4().hex}")
    consumer.subscribe([settings.topics.submitted])
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(events) < expected:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            events.append(decoder.decode(message.value()))
    consumer.close()
    return events


def test_submit_uploads_first_then_publishes_keyed_by_order(services: Settings) -> None:
    settings = isolated_settings(services)
    image = render_bill(["SUBMIT TEST", "TOTAL 1.00"])
    submission = BillSubmitter(settings).submit(image, order_number="ORDER-42", attributes={"shop": "7"})
    assert ObjectStore(settings.storage).get(submission.image.key) == image
    (event,) = submitted_events(settings, 1)
    assert event["order_number"] == "ORDER-42" and event["attributes"] == {"shop": "7"}
    assert event["image"]["sha256"] == submission.image.sha256 and event["image"]["content_type"] == "image/png"


def test_failed_upload_publishes_nothing(services: Settings) -> None:
    settings = isolated_settings(services)
    broken = load_settings(kafka=settings.kafka.model_dump(), topics=settings.topics.model_dump(),
                           storage={"endpoint": "127.0.0.1:1", "max_attempts": 1, "connect_timeout_s": 0.5})
    with pytest.raises(StorageUnavailable):
        BillSubmitter(broken).submit(render_bill(["NEVER PUBLISHED"]))
    assert submitted_events(settings, 1, timeout=5) == []


def test_backfill_is_resumable_from_its_ledger(services: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(services)
    bills = tmp_path / "bills"
    bills.mkdir()
    for i in range(6):
        (bills / f"bill-{i}.png").write_bytes(render_bill([f"BACKFILL {i}", f"TOTAL {i}.00"]))
    (bills / "broken.jpg").write_bytes(b"")  # empty: refused by the submitter, reported, non-zero exit

    def run() -> tuple[int, dict]:
        done = subprocess.run([sys.executable, "-m", "billstream_cli.main", "backfill", str(bills), "--json",
                               "--concurrency", "3"], capture_output=True, text=True,
                              env={**os.environ, **settings_env(settings)}, timeout=120)
        return done.returncode, json.loads(done.stdout)

    code, first = run()
    assert code == 1 and (first["submitted"], first["skipped"], first["failed"]) == (6, 0, 1)
    (bills / "broken.jpg").unlink()
    code, second = run()
    assert code == 0 and (second["submitted"], second["skipped"], second["failed"]) == (0, 6, 0)
    events = submitted_events(settings, 7, timeout=10)
    assert len(events) == 6 and len({e["order_number"] for e in events}) == 6


def test_a_staged_bill_is_stored_and_announced_only_when_published(services: Settings) -> None:
    settings = isolated_settings(services)
    image = render_bill(["STAGED TEST", "TOTAL 2.00"])
    submitter = BillSubmitter(settings)
    staged = submitter.stage(image, order_number="ORDER-43", attributes={"till": "2"})
    assert ObjectStore(settings.storage).get(staged.image.key) == image
    assert submitted_events(settings, 1, timeout=3) == []
    before_ms = time.time() * 1000
    submission = submitter.publish(staged)
    (event,) = submitted_events(settings, 1)
    assert submission.order_number == event["order_number"] == "ORDER-43" and event["attributes"] == {"till": "2"}
    assert event["submitted_at_ms"] >= before_ms - 1  # stamped when sent, not when staged


def test_a_backfill_resumed_after_delivery_failures_gives_every_bill_exactly_one_event(
        services: Settings, tmp_path: Path) -> None:
    """The broker refuses some events mid-backfill (the topic's max.message.bytes is below the
    events of the bills with long file names). Only confirmed bills may enter the ledger, so
    the resumed run, once the topic takes them, submits exactly the refused ones."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

    from billstream_core.kafka import make_admin
    from producers.backfill import Ledger, backfill, list_inputs

    settings = isolated_settings(services)
    topic = f"{settings.topics.submitted}-small"
    admin = make_admin(settings.kafka)
    admin.create_topics([NewTopic(topic, 2, 1, config={"max.message.bytes": "480"})])[topic].result(30)
    settings = settings.model_copy(update={"topics": settings.topics.model_copy(update={"submitted": topic})})
    bills = tmp_path / "bills"
    bills.mkdir()
    for i in range(8):
        # a name of 220 random hex characters (lz4 cannot shrink it) puts the event over the topic's limit
        name = f"bill-{i}.png" if i % 2 else f"bill-{i}-{secrets.token_hex(110)}.png"
        (bills / name).write_bytes(render_bill([f"RESUME {i}", f"TOTAL {i}.10"]))
    paths = list_inputs(bills)
    ledger_path = tmp_path / "ledger.jsonl"

    first = backfill(BillSubmitter(settings, source="backfill"), paths, Ledger(ledger_path), concurrency=1)
    assert first.failed and all("DeliveryError" in why for why in first.failed.values()), first.failed
    assert first.submitted + len(first.failed) == 8
    delivered = {e["attributes"]["backfill_path"] for e in submitted_events(settings, 8, timeout=8)}
    assert {Path(p).name for p, _ in Ledger(ledger_path).done} == delivered  # the ledger holds the confirmed only

    admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])])[
        ConfigResource(ResourceType.TOPIC, topic)].result(30)
    deadline = time.monotonic() + 30
    second = backfill(BillSubmitter(settings, source="backfill"), paths, Ledger(ledger_path), concurrency=3)
    while second.failed and time.monotonic() < deadline:  # the brokers apply the new limit asynchronously
        second = backfill(BillSubmitter(settings, source="backfill"), paths, Ledger(ledger_path), concurrency=3)
    assert (second.submitted, second.skipped, second.failed) == (len(first.failed), first.submitted, {})
    events = submitted_events(settings, 9, timeout=8)
    names = sorted(e["attributes"]["backfill_path"] for e in events)
    assert names == sorted(p.name for p in paths), "each bill exactly one event"
