"""The cost of TLS and SASL/SCRAM: the same work on the plaintext stack and on the secure
stack (`billstream infra up --secure`), side by side in one run.

Two rows per stack:
- transport: N small events produced (acks=all, idempotent) and consumed read_committed,
  no OCR: what the brokers' encryption and authentication cost per message;
- pipeline: bills submitted (claim-check to MinIO, event to Kafka) and recognised by one
  stream app and one worker, submit→result: what it costs a bill end to end.
Each stack is started here on free ports in a throw-away state directory, with its own
MinIO; the secure one's components each use their own credentials. The plaintext stack is
measured before and after the secure one (the machine's speed drifts), and the ratio is
secure over the mean of the two.

    python -m bench.secure [--messages 20000] [--bills 24] [--json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

from bench.machine import describe
from bench.stacks import scratch_stack
from billstream_core.kafka import ReliableProducer, ensure_topics, make_consumer
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings, TopicSpec, load_settings, settings_env
from infra.components import ComponentProcesses, wait_ready
from producers.samples import render_bill
from producers.submit import BillSubmitter


@contextmanager
def stack(secure: bool) -> Iterator[dict[str, Settings]]:
    """A fresh stack; the settings of each component (all the same on the plaintext one)."""
    with scratch_stack(secure=secure) as (local, admin):
        if secure:
            env_dir = local.state_dir / "secure"
            yield {c: load_settings(_env_file=env_dir / f"{c}.env", stream={"web_port": admin.stream.web_port})
                   for c in ("admin", "producer", "worker", "stream", "reader")}
        else:
            yield dict.fromkeys(("admin", "producer", "worker", "stream", "reader"), admin)


def transport(roles: dict[str, Settings], messages: int) -> dict[str, float]:
    """Events produced as the producer, read back as the stream app would read them."""
    admin = roles["admin"]
    topic = admin.topics.submitted  # the only topic the producer may write
    ensure_topics(admin.kafka, [TopicSpec(name=topic, partitions=6)])
    payload = os.urandom(1024)
    producer = ReliableProducer(roles["producer"].kafka)
    started = time.perf_counter()
    for n in range(messages):
        producer.produce(topic, payload, key=f"k{n}")
    producer.flush(120)
    produced_s = time.perf_counter() - started
    consumer = make_consumer(roles["stream"].kafka, f"{roles['stream'].stream.app_id}-bench-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    seen, started = 0, time.perf_counter()
    while seen < messages and time.perf_counter() - started < 120:
        seen += len([m for m in consumer.consume(1000, 1.0) if m.error() is None])
    consumed_s = time.perf_counter() - started
    consumer.close()
    return {"produce_msgs_s": messages / produced_s, "consume_msgs_s": seen / consumed_s}


def pipeline(roles: dict[str, Settings], bills: list[bytes], log_dir: Path) -> dict[str, float]:
    children = ComponentProcesses(log_dir)
    children.start("stream-app", "stream-app", env={**settings_env(roles["stream"])})
    children.start("worker", "worker", env={**settings_env(roles["worker"])})
    try:
        wait_ready(roles["stream"].stream.url, children, 180)
        submitter = BillSubmitter(roles["producer"])
        warm = submitter.submit(render_bill([f"WARM {uuid.uuid4().hex[:6]}"])).order_number
        with ResultsReader(roles["reader"].kafka, roles["reader"].topics.results, start="end") as results:
            _wait(results, {warm}, {}, children)
            sent: dict[str, float] = {}
            started = time.perf_counter()
            for image in bills:
                sent[submitter.submit(image, flush=False).order_number] = time.perf_counter()
            submitter.flush()
            done: dict[str, float] = {}
            _wait(results, set(sent), done, children)
            elapsed = time.perf_counter() - started
        latencies = sorted(done[o] - sent[o] for o in sent)
        return {"bills_s": len(bills) / elapsed, "p50_s": median(latencies),
                "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}
    finally:
        children.stop()


def _wait(results: ResultsReader, orders: set[str], done: dict[str, float], children: ComponentProcesses) -> None:
    deadline = time.monotonic() + 600
    while not orders <= done.keys() and time.monotonic() < deadline:
        children.check()
        polled = results.poll(0.5)
        if polled is not None and polled.order_number in orders:
            done.setdefault(polled.order_number, time.perf_counter())
    if not orders <= done.keys():
        raise SystemExit(f"{len(orders - done.keys())} bills without a result after 600 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--bills", type=int, default=24)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)  # librdkafka's retries while a stack starts
    tag = uuid.uuid4().hex[:6]
    bills = [render_bill([f"BENCH {tag} SHOP {n}", f"ITEM {n} 1.{n:02d}", f"TOTAL {n}.{n:02d}"])
             for n in range(args.bills)]
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-secure-logs-") as logs:
        for label, secure in (("plaintext (before)", False), ("secure", True), ("plaintext (after)", False)):
            with stack(secure) as roles:
                figures = transport(roles, args.messages) | pipeline(roles, bills, Path(logs) / label.split()[0])
            rows.append((label, figures))
            print(f"{label}: {json.dumps({k: round(v, 3) for k, v in figures.items()})}", file=sys.stderr, flush=True)
    plain = {k: (rows[0][1][k] + rows[2][1][k]) / 2 for k in rows[0][1]}
    secure_row = rows[1][1]
    ratio = {k: secure_row[k] / plain[k] for k in plain}
    if args.json:
        print(json.dumps({"rows": dict(rows), "secure_over_plaintext": ratio}))
        return 0
    print(describe())
    print(f"inputs: {args.messages} events of 1 KiB (transport); {args.bills} distinct rendered bills, one stream app "
          "and one worker (pipeline)")
    keys = ("produce_msgs_s", "consume_msgs_s", "bills_s", "p50_s", "p99_s")
    print("| stack | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for label, figures in [*rows, ("secure / plaintext", ratio)]:
        fmt = "{:.2f}x" if label.startswith("secure /") else "{:.2f}"
        print(f"| {label} | " + " | ".join(fmt.format(figures[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
