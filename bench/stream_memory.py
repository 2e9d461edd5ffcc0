"""The stream app's resident memory against the number of orders it remembers, with the
orders table in memory and on disk (RocksDB), side by side in one run.

For each store: fresh topics, one stream app and one worker; a warm-up of 100 orders; then
N orders (a quarter of them distinct images, each sent four times, as repeats are common);
the stream app's process_resident_memory_bytes (its /metrics) after the warm-up and at the
end. Needs the local stack (`billstream infra up`).

    python -m bench.stream_memory [--orders 1400]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench.faults.harness import Pipeline, isolated
from bench.machine import describe
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings, load_settings
from producers.samples import render_bill
from producers.submit import BillSubmitter


def resident_mb(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "process_resident_memory_bytes":
                return sample.value / 2**20
    raise RuntimeError("no process_resident_memory_bytes")


def submit_and_wait(settings: Settings, orders: int, tag: str) -> None:
    distinct = max(1, orders // 4)
    images = [render_bill([f"MEMORY {tag} SHOP {n}", f"ITEM {n % 9} {n}.{n % 100:02d}", f"TOTAL {n}.75"])
              for n in range(distinct)]
    submitter = BillSubmitter(settings, source="bench")
    with ResultsReader(settings.kafka, settings.topics.results, start="end") as results:
        sent = {submitter.submit(images[n % distinct], flush=False).order_number for n in range(orders)}
        submitter.flush()
        seen: set[str] = set()
        deadline = time.monotonic() + 1800
        while not sent <= seen and time.monotonic() < deadline:
            polled = results.poll(0.5)
            if polled is not None:
                seen.add(polled.order_number)
    if not sent <= seen:
        raise SystemExit(f"{len(sent - seen)} orders without a result")


def measure(base: Settings, store: str, orders: int, log_dir: Path) -> dict[str, float]:
    settings = isolated(base)
    settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"store": store})})
    pipe = Pipeline(settings, log_dir / store)
    pipe.stream_app("stream-1")
    pipe.worker("worker-1")
    try:
        pipe.wait_ready()
        tag = uuid.uuid4().hex[:6]
        submit_and_wait(settings, 100, f"{tag}w")
        warm = resident_mb(settings.stream.url)
        submit_and_wait(settings, orders, tag)
        time.sleep(5)
        end = resident_mb(settings.stream.url)
        return {"after_warmup_mb": warm, "at_end_mb": end, "growth_mb": end - warm,
                "kb_per_order": (end - warm) * 1024 / orders}
    finally:
        pipe.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1400)
    args = parser.parse_args(argv)
    logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)
    logging.getLogger("billstream.audit").setLevel(logging.WARNING)
    base = load_settings()
    rows = {}
    with tempfile.TemporaryDirectory() as logs:
        for store in ("memory", "rocksdb"):
            rows[store] = measure(base, store, args.orders, Path(logs))
            print(f"{store}: {json.dumps({k: round(v, 1) for k, v in rows[store].items()})}", file=sys.stderr, flush=True)
    print(describe())
    print(f"inputs: {args.orders} orders after 100 of warm-up, a quarter of them distinct rendered bills")
    print("| orders table | RSS after warm-up MB | RSS at end MB | growth MB | KB an order |")
    print("|---|---|---|---|---|")
    for store, r in rows.items():
        print(f"| {store} | {r['after_warmup_mb']:.0f} | {r['at_end_mb']:.0f} | {r['growth_mb']:.0f} | {r['kb_per_order']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
