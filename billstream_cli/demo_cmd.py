"""`billstream demo`: the whole system on one machine, with results printed as they arrive.

Brings up Kafka + MinIO (unless running), the stream app and two workers, submits sample
bills (plus one repeat, answered from cache, and one broken file, answered FAILED), prints
each result, then a summary. Ctrl-C, or the end, stops everything the demo started.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from confluent_kafka import TopicPartition

from billstream_cli.submit_cmd import format_result
from billstream_core.errors import BillstreamError
from billstream_core.kafka import make_consumer
from billstream_core.serde import codec
from billstream_core.settings import Settings
from infra.stack import LocalStack


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("demo", help="local demo: stack, stream app, two workers, sample bills, results")
    parser.add_argument("--bills", type=int, default=8, help="how many sample bills to submit")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all results")
    parser.add_argument("--keep", action="store_true", help="leave the stack, stream app and workers running")
    parser.add_argument("--json", action="store_true", help="print results and the summary as JSON lines")
    parser.set_defaults(run=run)


class Children:
    """The processes the demo starts; stopped in reverse order, SIGTERM then SIGKILL."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "billstream_cli.main", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc))

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise BillstreamError(f"{name} exited with code {proc.returncode}; see {self.log_dir / name}.log")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_http(url: str, children: Children, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        try:
            urllib.request.urlopen(f"{url}/ready", timeout=2).read()  # 503 until the tables are recovered
            return
        except OSError:
            time.sleep(0.5)
    raise BillstreamError(f"the stream app did not answer at {url} within {timeout:.0f}s")


def _say(message: str, as_json: bool) -> None:
    print(message if not as_json else json.dumps({"event": message}), file=sys.stderr if as_json else sys.stdout,
          flush=True)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from producers.samples import sample_bills
    from producers.submit import BillSubmitter

    stack = LocalStack(settings)
    was_running = all(s.running for s in stack.status())
    stack.up()
    children = Children(settings.infra.resolved_state_dir / "logs" / "demo")
    interrupted = False
    try:
        _say(f"starting the stream app and {args.workers} workers (logs: {children.log_dir})", args.json)
        children.start("stream-app", "stream-app")
        for n in range(args.workers):
            children.start(f"worker-{n + 1}", "worker", "--instance-id", f"demo-{n + 1}")
        _wait_http(settings.stream.url, children, 120)

        results = make_consumer(settings.kafka, f"billstream-demo-{os.getpid()}-{time.time_ns()}", read_committed=True)
        metadata = results.list_topics(settings.topics.results, timeout=10).topics[settings.topics.results]
        start = []
        for partition in metadata.partitions:
            _, high = results.get_watermark_offsets(TopicPartition(settings.topics.results, partition), timeout=10)
            start.append(TopicPartition(settings.topics.results, partition, high))
        results.assign(start)

        submitter = BillSubmitter(settings, source="demo")
        run_tag = int(time.time()) % 100000
        images = sample_bills(args.bills, run=run_tag)
        orders: dict[str, str] = {}
        started = time.monotonic()
        for n, image in enumerate(images):
            orders[submitter.submit(image, flush=False).order_number] = f"sample bill {n + 1}"
        orders[submitter.submit(images[0], flush=False).order_number] = "repeat of sample bill 1"
        broken = f"%PDF-1.4 run {run_tag}: this is not an image".encode()
        orders[submitter.submit(broken, flush=False).order_number] = "broken file"
        submitter.flush()
        _say(f"submitted {len(orders)} orders: {args.bills} sample bills, 1 repeat, 1 broken file", args.json)

        decoder = codec("BillResult")
        seen: dict[str, list[dict]] = {}
        deadline = time.monotonic() + args.timeout
        while len(seen) < len(orders) and time.monotonic() < deadline:
            children.check()
            message = results.poll(0.5)
            if message is None or message.error():
                continue
            record = decoder.decode(message.value())
            if record["order_number"] not in orders:
                continue
            seen.setdefault(record["order_number"], []).append(record)
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(f"{format_result(record)}   [{orders[record['order_number']]}]", flush=True)
        results.close()
        elapsed = time.monotonic() - started
        summary = {
            "submitted": len(orders), "results": sum(len(v) for v in seen.values()), "lost": len(set(orders) - set(seen)),
            "duplicates": sum(len(v) - 1 for v in seen.values()),
            "recognized": sum(v[0]["status"] == "RECOGNIZED" for v in seen.values()),
            "failed": sum(v[0]["status"] == "FAILED" for v in seen.values()),
            "cached": sum(v[0]["cached"] for v in seen.values()), "seconds": round(elapsed, 2),
        }
        if args.json:
            print(json.dumps({"summary": summary}))
        else:
            print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        ok = summary["lost"] == 0 and summary["duplicates"] == 0
        return 0 if ok else 1
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not args.keep:
            children.stop()
            if not was_running:
                stack.down()
            _say("stopped everything the demo started" + (" (interrupted)" if interrupted else ""), args.json)
