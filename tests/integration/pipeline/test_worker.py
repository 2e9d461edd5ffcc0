"""Workers against the real broker and MinIO: one result per order, failures as results,
dead letters, and exactly-once across a kill -9."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from confluent_kafka import Message

from billstream_core.kafka import ReliableProducer, make_consumer
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.pipeline import (
    WorkerProcess,
    assert_each_order_once,
    collect_results,
    count,
    isolated_settings,
    stop_all,
)


@pytest.fixture
def pipeline(services: Settings) -> Settings:
    return isolated_settings(services)


def bills(n: int, tag: str) -> list[bytes]:
    return [render_bill([f"SHOP {tag} {i}", f"INVOICE NO: {1000 + i}", f"TOTAL: {i}.50"]) for i in range(n)]


def test_every_bill_gets_exactly_one_result(pipeline: Settings, tmp_path: Path) -> None:
    submitter = BillSubmitter(pipeline)
    orders = {submitter.submit(image, flush=False).order_number for image in bills(12, "A")}
    submitter.flush()
    niced = pipeline.model_copy(update={"worker": pipeline.worker.model_copy(update={"nice": 3})})
    worker = WorkerProcess(niced, "w-basic", tmp_path, input_topic=pipeline.topics.submitted)
    try:
        found = collect_results(pipeline, orders, timeout=240)
        # the worker lowered its own CPU priority as its settings asked
        assert os.getpriority(os.PRIO_PROCESS, worker.process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 3
    finally:
        assert worker.terminate() == 0, worker.log_path.read_text()[-2000:]
        worker.close()
    assert_each_order_once("12 bills, one worker", orders, found, settings=pipeline, log_dir=tmp_path)
    for records in found.values():
        record = records[0]
        assert record["status"] == "RECOGNIZED", record
        assert record["model_name"] == "billstream-ocr" and record["model_version"]
        timings = record["timings_ms"]
        assert set(timings) == {"fetch_ms", "decode_ms", "detect_ms", "recognize_ms", "fields_ms", "total_ms"}, timings
        assert timings["total_ms"] == pytest.approx(sum(v for k, v in timings.items() if k != "total_ms"), abs=0.05)
        assert "TOTAL" in record["page_text"].upper() and record["cached"] is False
        total = {d["name"]: d for d in record["key_field_details"]}["total"]  # key fields ride in every result
        assert record["key_fields"]["total"] == total["text"] and total["value"].endswith(".50"), total
        assert total["lines"] and len(total["boxes"]) == len(total["lines"])


def test_bad_inputs_fail_with_their_codes_and_garbage_goes_to_dead_letter(pipeline: Settings, tmp_path: Path) -> None:
    store = ObjectStore(pipeline.storage)
    submitter = BillSubmitter(pipeline, store=store)
    noise = np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8)
    cases = {
        "UNSUPPORTED_FORMAT": b"GIF89a" + bytes(64),
        "CORRUPT_IMAGE": b"\xff\xd8\xff\xe0" + bytes(300),
        "IMAGE_TOO_LARGE": cv2.imencode(".png", np.zeros((100, 31_000), np.uint8))[1].tobytes(),
    }
    expected: dict[str, str] = {}
    for code, data in cases.items():
        expected[submitter.submit(data).order_number] = code
    # an event whose object vanished, and one whose object is empty (written around the submitter)
    missing = submitter.submit(cv2.imencode(".png", noise)[1].tobytes())
    store._client.remove_object(store.bucket, missing.image.key)
    expected[missing.order_number] = "OBJECT_NOT_FOUND"
    empty = store.put(b"")
    event = submitter._codec.encode({"order_number": "EMPTY-1", "submitted_at_ms": 1, "source": "test", "attributes": {},
                                     "image": {"bucket": empty.bucket, "key": empty.key, "sha256": empty.sha256,
                                               "size_bytes": 0, "content_type": "application/octet-stream"}})
    garbage = ReliableProducer(pipeline.kafka)
    garbage.produce(pipeline.topics.submitted, event, key="EMPTY-1")
    garbage.produce(pipeline.topics.submitted, b"\x00not avro at all", key="GARBAGE-1")
    garbage.produce(pipeline.topics.submitted, b"\xc3\x01" + bytes(8) + b"unknown schema", key=None)
    garbage.flush()
    expected["EMPTY-1"] = "EMPTY_OBJECT"
    expected["GARBAGE-1"] = "UNDECODABLE_EVENT"
    later = submitter.submit(render_bill(["AFTER THE GARBAGE", "TOTAL 3.00"])).order_number

    worker = WorkerProcess(pipeline, "w-bad", tmp_path, input_topic=pipeline.topics.submitted)
    try:
        found = collect_results(pipeline, set(expected) | {later}, timeout=240)
    finally:
        worker.terminate()
        worker.close()
    for order, code in expected.items():
        assert len(found[order]) == 1, order
        assert (found[order][0]["status"], found[order][0]["error_code"]) == ("FAILED", code), found[order][0]
        assert found[order][0]["error_message"]
    assert found[later][0]["status"] == "RECOGNIZED"

    dead = make_consumer(pipeline.kafka, f"dlq-{time.time()}")
    dead.subscribe([pipeline.topics.dead_letter])
    letters: list[Message] = []
    deadline = time.monotonic() + 30
    while len(letters) < 2 and time.monotonic() < deadline:
        message = dead.poll(0.5)
        if message is not None and message.error() is None:
            letters.append(message)
    dead.close()
    assert sorted((m.key() or b"").decode() for m in letters) == ["", "GARBAGE-1"]
    assert all(dict(m.headers() or [])["reason"] for m in letters)


def test_kill_9_mid_batch_loses_and_duplicates_nothing(pipeline: Settings, tmp_path: Path) -> None:
    submitter = BillSubmitter(pipeline)
    orders = {submitter.submit(image, flush=False).order_number for image in bills(40, "K")}
    submitter.flush()
    first = WorkerProcess(pipeline, "w-one", tmp_path, input_topic=pipeline.topics.submitted)
    second = WorkerProcess(pipeline, "w-two", tmp_path, input_topic=pipeline.topics.submitted)
    restarted = None
    try:
        early = collect_results(pipeline, orders, timeout=120, settle=0.1)  # until results flow
        deadline = time.monotonic() + 120
        while sum(len(v) for v in early.values()) < 4 and time.monotonic() < deadline:
            early = collect_results(pipeline, orders, timeout=5, settle=0.1)
        first.kill()  # the worker is busy with a batch nearly all the time: this lands mid-batch
        restarted = WorkerProcess(pipeline, "w-one", tmp_path, input_topic=pipeline.topics.submitted)
        found = collect_results(pipeline, orders, timeout=300, settle=5)
    finally:
        stop_all(first, second, restarted)
    counts = count(orders, found)
    print(f"kill -9 test: {counts}")
    assert counts == {"submitted": 40, "results": 40, "distinct": 40, "lost": 0, "duplicates": 0, "unexpected": 0}


class SlowEngine:
    """The real handler's contract with an engine that takes longer than max.poll.interval.ms."""

    name, version = "slow-test-engine", "0"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches = 0

    def read_pages(self, pages: list, text_layers: list | None = None) -> list:
        self.batches += 1
        time.sleep(self.seconds)
        raise RuntimeError("slow engine: no pages")  # each order still gets a (FAILED, INTERNAL) result


def test_a_batch_slower_than_the_poll_interval_keeps_its_membership(pipeline: Settings) -> None:
    """max.poll.interval.ms 10 s, one batch takes 14 s: the worker keeps polling (paused), so the
    group does not evict it, the batch commits once and every order gets one result."""
    import threading

    from inference_worker.handler import BillHandler
    from inference_worker.loop import InferenceWorker

    settings = pipeline.model_copy(update={"worker": pipeline.worker.model_copy(update={
        "input_topic": pipeline.topics.submitted, "max_poll_interval_ms": 10_000, "max_batch": 64})})
    submitter = BillSubmitter(settings)
    orders = {submitter.submit(image, flush=False).order_number for image in bills(4, "SLOW")}
    submitter.flush()
    engine = SlowEngine(14.0)
    worker = InferenceWorker(settings, BillHandler(engine, ObjectStore(settings.storage), settings.limits),
                             instance_id="w-slow")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        found = collect_results(settings, orders, timeout=120, settle=2)
    finally:
        worker.stop()
        thread.join(60)
    assert_each_order_once("slow batch", orders, found, settings=settings)
    assert {r["error_code"] for rs in found.values() for r in rs} == {"INTERNAL"}
    assert worker.stats.aborts == 0 and engine.batches <= 2, (worker.stats, engine.batches)


def test_a_restarted_worker_takes_its_slot_and_fences_the_open_transaction(pipeline: Settings, tmp_path: Path) -> None:
    """A worker killed with -9 inside a transaction leaves it open, and read_committed readers
    of those partitions wait until it ends. Its restart, with no --instance-id, takes the same
    slot and so the same transactional id, which aborts the open transaction at once: the new
    results are visible within seconds, not after the transaction's timeout (10 minutes here).
    The open transaction is made deterministic: the killed worker's id opens one on every
    results partition after the kill, as a kill -9 mid-commit would leave it."""
    from confluent_kafka import Producer

    from billstream_core.kafka import client_config
    from inference_worker.loop import transactional_id

    slots = {"TMPDIR": str(tmp_path / "slots")}  # this test's own slot directory
    (tmp_path / "slots").mkdir()
    submitter = BillSubmitter(pipeline)
    first_orders = {submitter.submit(image, flush=False).order_number for image in bills(3, "F1")}
    submitter.flush()
    first = WorkerProcess(pipeline, None, tmp_path, pipeline.topics.submitted, name="worker-first", env=slots)
    restarted = None
    try:
        assert_each_order_once("before the kill", first_orders, collect_results(pipeline, first_orders, timeout=240))
        first.kill()
        identity = _worker_identity(first.log_path)
        assert identity.endswith("-w0"), identity

        zombie = Producer(client_config(pipeline.kafka) | {"transactional.id": transactional_id(pipeline, identity),
                                                           "transaction.timeout.ms": 600_000})
        zombie.init_transactions(30)
        zombie.begin_transaction()
        for partition in range(pipeline.topics.results_partitions):
            zombie.produce(pipeline.topics.results, b"open", key=b"ZOMBIE", partition=partition)
        assert zombie.flush(30) == 0

        orders = {submitter.submit(image, flush=False).order_number for image in bills(3, "F2")}
        submitter.flush()
        started = time.monotonic()
        restarted = WorkerProcess(pipeline, None, tmp_path, pipeline.topics.submitted, name="worker-restarted", env=slots)
        found = collect_results(pipeline, orders, timeout=240, settle=0.5)
        visible_s = time.monotonic() - started
    finally:
        stop_all(first, restarted)
    assert _worker_identity(restarted.log_path) == identity
    assert_each_order_once("after the restart", orders, {k: v for k, v in found.items() if k in orders})
    assert first_orders <= found.keys() and "ZOMBIE" not in found
    print(f"restart with slot {identity}: new results visible {visible_s:.1f} s after the start")
    assert visible_s < 90, f"results took {visible_s:.0f} s: the open transaction was not fenced"


def _worker_identity(log_path: Path) -> str:
    """The id the worker announced on its first line: ``worker <id>: model …``."""
    for line in log_path.read_text().splitlines():
        if line.startswith("worker ") and ": model " in line:
            return line.split()[1].rstrip(":")
    raise AssertionError(f"the worker never announced its id:\n{log_path.read_text()[-2000:]}")


def test_an_upside_down_jpeg_a_pdf_and_an_ordinary_bill_come_back_upright_with_key_fields(
        pipeline: Settings, tmp_path: Path) -> None:
    """And a born-digital PDF, read from its own text."""
    from producers.samples import sample_bill_lines, sample_bills
    from tests.support.pdfs import pages_pdf, text_pdf

    images = sample_bills(3, run=7)
    page = cv2.imdecode(np.frombuffer(images[0], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert page is not None
    upside_down = cv2.imencode(".jpg", cv2.rotate(page, cv2.ROTATE_180))[1].tobytes()  # no EXIF tag
    submitter = BillSubmitter(pipeline)
    orders = {submitter.submit(upside_down, flush=False).order_number: 0,
              submitter.submit(pages_pdf([images[1], images[2]]), flush=False).order_number: 1,
              submitter.submit(images[2], flush=False).order_number: 2}
    typed = sample_bill_lines(0, run=7)
    born_digital = submitter.submit(text_pdf(typed, (320, 60 + 18 * len(typed))), flush=False).order_number
    orders[born_digital] = 0
    submitter.flush()
    worker = WorkerProcess(pipeline, "w-bills", tmp_path, input_topic=pipeline.topics.submitted)
    try:
        found = collect_results(pipeline, set(orders), timeout=240)
    finally:
        stop_all(worker)
    assert_each_order_once("bills of every shape", set(orders), found, settings=pipeline, log_dir=tmp_path)
    for order, index in orders.items():
        (record,) = found[order]
        printed = sample_bill_lines(index, run=7)
        assert record["status"] == "RECOGNIZED", record
        assert record["key_fields"]["company"] == printed[0], record["key_fields"]
        assert printed[0] in record["page_text"]
        assert record["key_fields"]["date"] and record["key_fields"]["total"]
    upside, pdf, plain, text = (found[o][0] for o in orders)
    assert upside["page_rotations"] == [180] and plain["page_rotations"] == []
    assert [r["text_source"] for r in (upside, pdf, plain, text)] == ["ocr", "ocr", "ocr", "pdf-text"]
    assert [line["text"] for line in text["lines"]] == typed and text["key_fields"]["address"]
    assert pdf["page_count"] == 2 and {line["page"] for line in pdf["lines"]} == {0, 1}
    assert sample_bill_lines(2, run=7)[0] in pdf["page_text"]
