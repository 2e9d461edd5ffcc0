"""The stream app's resident memory against the number of orders it has seen, with the
orders table in memory and on disk (RocksDB), side by side in one run.

For each store: fresh topics, one stream app, and a warm-up of 100 orders answered by a
real worker, which gives a real result of a full-length receipt. Then the worker is
stopped and a replay worker answers each work event with a copy of that result (its order
and image swapped in), so that the stream app, not OCR, sets the pace: twenty thousand
orders take minutes, not hours. The orders come in steps, a share of them distinct images
(``--distinct``) and the rest repeats, as real traffic has; after each step, once every
order has its result, the stream app's RSS (its /metrics) is recorded. Needs the local
stack (`billstream infra up`).

    python -m bench.stream_memory [--orders 20000] [--step 2000] [--distinct 0.1] [--stores rocksdb,memory]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.faults.harness import Pipeline, isolated
from bench.machine import describe
from billstream_core.clock import now_ms
from billstream_core.errors import DecodeError
from billstream_core.kafka import ReliableProducer, make_consumer, take_available
from billstream_core.results_reader import ResultsReader
from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings
from producers.samples import ITEMS, render_bill, sample_bill_lines
from producers.submit import BillSubmitter

WARMUP = 100


def resident_mb(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "process_resident_memory_bytes":
                return sample.value / 2**20
    raise RuntimeError("no process_resident_memory_bytes")


def long_bill(index: int, tag: str) -> bytes:
    """A receipt of real length (~35 lines), so a cached result weighs what a real one does."""
    lines = sample_bill_lines(index)
    items = [f"{name} {n + 1} X {price:.2f} {price * (n + 1):.2f}" for n, (name, price) in
             enumerate(ITEMS[k % len(ITEMS)] for k in range(index, index + 24))]
    return render_bill([*lines[:5], f"REF {tag}-{index}", *items, *lines[5:]])


class ReplayWorker:
    """Answers every work event with ``template`` re-addressed to its order and image."""

    def __init__(self, settings: Settings, template: dict[str, Any]) -> None:
        self.settings, self.template = settings, template
        self._consumer = make_consumer(settings.kafka, settings.worker.group_id, read_committed=True)
        self._producer = ReliableProducer(settings.kafka)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-worker", daemon=True)
        self.answered = 0

    def __enter__(self) -> ReplayWorker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._producer.flush(30)
        self._consumer.close()

    def _run(self) -> None:
        submitted, result = codec("BillSubmitted"), codec("BillResult")
        self._consumer.subscribe([self.settings.topics.work])
        while not self._stop.is_set():
            messages = take_available(self._consumer, 500, 0.2)
            for message in messages:
                try:
                    event = submitted.decode(message.value() or b"")
                except DecodeError:
                    continue
                record = self.template | {"order_number": event["order_number"], "image_sha256": event["image"]["sha256"],
                                          "submitted_at_ms": event["submitted_at_ms"], "completed_at_ms": now_ms()}
                self._producer.produce(self.settings.topics.results, result.encode(record),
                                       key=event["order_number"].encode())
                self.answered += 1
            if messages:
                self._producer.flush(30)
                self._consumer.commit(asynchronous=False)


def submit_and_wait(settings: Settings, images: list[bytes], count: int, start: int) -> dict[str, Any] | None:
    """Send ``count`` orders cycling through ``images`` from ``start``; wait for every
    result. Returns one recognised, uncached result (the replay's template)."""
    submitter = BillSubmitter(settings, source="bench")
    template = None
    with ResultsReader(settings.kafka, settings.topics.results, start="end") as results:
        sent = {submitter.submit(images[(start + n) % len(images)], flush=False).order_number for n in range(count)}
        submitter.flush()
        seen: set[str] = set()
        deadline = time.monotonic() + 1800
        while not sent <= seen and time.monotonic() < deadline:
            polled = results.poll(0.5)
            if polled is not None:
                seen.add(polled.order_number)
                record = polled.record
                if record and record["status"] == "RECOGNIZED" and not record["cached"]:
                    template = record
    if not sent <= seen:
        raise SystemExit(f"{len(sent - seen)} orders without a result")
    return template


def measure(base: Settings, store: str, args: argparse.Namespace, log_dir: Path) -> list[tuple[int, float]]:
    """(orders after the warm-up, RSS MB) after the warm-up and after each step."""
    settings = isolated(base)
    settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"store": store})})
    pipe = Pipeline(settings, log_dir / store)
    pipe.stream_app("stream-1")
    worker = pipe.worker("worker-1")
    tag = uuid.uuid4().hex[:6]
    distinct = max(1, int(args.orders * args.distinct))
    try:
        pipe.wait_ready()
        warm = [long_bill(n, f"{tag}w") for n in range(WARMUP // 4)]
        template = submit_and_wait(settings, warm, WARMUP, 0)
        if template is None:
            raise SystemExit("the warm-up gave no recognised result to replay")
        worker.ask_to_stop()
        worker.wait_stopped(60)
        print(f"{store}: template result of {len(template['lines'])} lines; rendering {distinct} bills",
              file=sys.stderr, flush=True)
        images = [long_bill(n, tag) for n in range(distinct)]
        samples = [(0, resident_mb(settings.stream.url))]
        with ReplayWorker(settings, template):
            for done in range(0, args.orders, args.step):
                submit_and_wait(settings, images, min(args.step, args.orders - done), done)
                samples.append((done + min(args.step, args.orders - done), resident_mb(settings.stream.url)))
                print(f"{store}: {samples[-1][0]} orders, {samples[-1][1]:.0f} MB", file=sys.stderr, flush=True)
        return samples
    finally:
        pipe.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=2_000)
    parser.add_argument("--distinct", type=float, default=0.1, help="share of the orders that are distinct images")
    parser.add_argument("--stores", default="rocksdb,memory", help="orders table stores to measure, in order")
    args = parser.parse_args(argv)
    logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)
    logging.getLogger("billstream.audit").setLevel(logging.WARNING)
    base = load_settings()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    rows = {}
    with tempfile.TemporaryDirectory() as logs:
        for store in stores:
            rows[store] = measure(base, store, args, Path(logs))
    print(describe())
    print(f"inputs: {WARMUP} orders of warm-up (real worker), then {args.orders} orders, {args.distinct:.0%} of them "
          "distinct ~35-line receipts, answered by the replay worker; RSS once each step's results are all in")
    print("| orders after warm-up | " + " | ".join(f"{store} RSS MB" for store in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for n, (orders, _) in enumerate(next(iter(rows.values()))):
        print(f"| {orders} | " + " | ".join(f"{samples[n][1]:.0f}" for samples in rows.values()) + " |")
    for store, samples in rows.items():  # growth per half: a curve levelling off grows less in the second
        middle = samples[len(samples) // 2]
        halves = [(a, b) for a, b in ((samples[0], middle), (middle, samples[-1])) if b[0] > a[0]]
        print(f"{store}: " + "; ".join(f"{b[1] - a[1]:+.0f} MB from {a[0]} to {b[0]} orders "
                                       f"({(b[1] - a[1]) * 1024 / (b[0] - a[0]):.2f} KB an order)" for a, b in halves))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
