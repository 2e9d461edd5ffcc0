"""The front door under load: bills accepted per second over HTTP, the POST's latency, and
every accepted order's result counted (lost, duplicates), beside the engine's own bills/s on
the same machine, in one run.

Rows: one API instance, and two behind nginx (Debian's, started and stopped here), each at
50 and 200 concurrent clients posting real receipt images (raw bodies) for ``--seconds``;
then one instance at half its measured capacity, an open-loop steady rate, for the p99.
The images repeat, as a backfill's might: the distinct ones are recognised once and the rest
answered from cache, so results for every accepted order arrive in minutes.

Needs the local stack (`billstream infra up`) and nginx (`apt-get install nginx-light`).

    python -m bench.api [--seconds 60] [--clients 50,200] [--images DIR] [--without-pipeline] [--json]

``--without-pipeline`` runs the API alone (no stream app, no worker, no results counted):
the front door's own figures, without the router and the worker on the same cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.pipeline import BareEngine, load_engine, percentile
from billstream_core.kafka import ensure_topics, wait_for_broker
from billstream_core.media import list_images, sniff_content_type
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings, load_settings, settings_env
from infra.components import ComponentProcesses, wait_ready
from tests.support.services import free_port

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "receipts-dev"


@dataclass
class Load:
    """One row's requests: latencies of accepted POSTs, statuses, order numbers."""
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    orders: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        accepted = self.statuses.get("202", 0)
        return {"accepted_per_s": accepted / self.seconds if self.seconds else 0.0, "accepted": accepted,
                "p50_ms": percentile(self.latencies, 0.5) * 1000, "p99_ms": percentile(self.latencies, 0.99) * 1000,
                "errors": {k: v for k, v in self.statuses.items() if k != "202"}}


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes,
                content_type: str) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST on an open connection (a plain client: the load must not
    cost more CPU than the server it measures)."""
    writer.write(f"POST /v1/bills HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _client(url: str, images: list[tuple[bytes, str]], load: Load, stop_at: float, offset: int,
                  interval: float | None, phase: float = 0.0) -> None:
    host_port = url.split("//", 1)[1]
    host, port = host_port.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    n, next_at = offset, time.monotonic() + phase
    try:
        while time.monotonic() < stop_at:
            if interval is not None:  # open loop: a fixed schedule, however slow the answers
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            body, content_type = images[n % len(images)]
            n += 1
            started = time.perf_counter()
            try:
                status, answer = await _post(reader, writer, host_port, body, content_type)
            except (OSError, asyncio.IncompleteReadError):
                load.statuses["connection error"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                continue
            load.statuses[str(status)] += 1
            if status == 202:
                load.latencies.append(time.perf_counter() - started)
                load.orders.append(json.loads(answer)["orders"][0]["order_number"])
    finally:
        writer.close()


def run_load(url: str, images: list[tuple[bytes, str]], clients: int, seconds: float,
             rate: float | None = None) -> Load:
    """``clients`` connections for ``seconds``; with ``rate``, an open loop at that total rate."""
    load = Load()

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        interval = clients / rate if rate else None
        started = time.monotonic()
        # open loop: the clients' schedules are staggered evenly, not all firing at once
        await asyncio.gather(*(_client(url, images, load, stop_at, i * 7, interval,
                                       (interval or 0.0) * i / clients) for i in range(clients)))
        load.seconds = time.monotonic() - started

    asyncio.run(main())
    return load


class Nginx:
    """Debian's nginx in front of the API instances, in a throw-away prefix."""

    def __init__(self, upstreams: list[str], port: int, workdir: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise SystemExit("bench.api needs nginx: apt-get install nginx-light")
        servers = "\n".join(f"        server {u.split('//', 1)[1]};" for u in upstreams)
        conf = workdir / "nginx.conf"
        conf.write_text(f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    upstream api {{
{servers}
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
        }}
    }}
}}
""")
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def count_results(settings: Settings, orders: list[str], timeout: float) -> dict[str, int]:
    wanted = set(orders)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    with ResultsReader(settings.kafka, settings.topics.results, group_prefix="bench-api") as reader:
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            result = reader.poll(0.5)
            if result is not None and result.order_number in wanted:
                seen[result.order_number] += 1
                idle_since = time.monotonic()
            elif wanted <= seen.keys() and time.monotonic() - idle_since > 3:
                break
    return {"accepted": len(wanted), "results": sum(seen.values()), "lost": len(wanted - seen.keys()),
            "duplicates": sum(v - 1 for v in seen.values() if v > 1)}


def bench_settings() -> tuple[Settings, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    topics = {"submitted": f"bench-{tag}.submitted", "work": f"bench-{tag}.work", "results": f"bench-{tag}.results",
              "dead_letter": f"bench-{tag}.dlq"}
    settings = load_settings(topics=topics, stream={"app_id": f"bench-stream-{tag}", "web_port": free_port()},
                             worker={"group_id": f"bench-workers-{tag}"},
                             api={"allow_anonymous": True, "rate_per_s": 1e6, "burst": 1_000_000})
    ensure_topics(settings.kafka, settings.topics.all())
    return settings, {**os.environ, **settings_env(settings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", default="50,200", help="concurrent clients, comma-separated")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--without-pipeline", action="store_true", help="the API alone; no results counted")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = list_images(args.images)[:24] if args.images.is_dir() else []
    if not paths:
        raise SystemExit(f"no images in {args.images}: pass --images DIR")
    raw = [p.read_bytes() for p in paths]
    images = [(data, sniff_content_type(data)) for data in raw]
    clients = [int(c) for c in args.clients.split(",")]

    settings, env = bench_settings()
    wait_for_broker(settings.kafka)
    engine = BareEngine(load_engine(os.cpu_count() or 2, settings), raw[:16], raw[:2], settings)
    engine.engine.read_image_bytes(raw[0])
    engine_rate = engine.rate()
    del engine

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    children = ComponentProcesses(workdir / "logs", env)
    rows: dict[str, dict[str, Any]] = {}
    orders: list[str] = []
    nginx: Nginx | None = None
    try:
        if not args.without_pipeline:
            children.start("stream-app", "stream-app")
            children.start("worker", "worker")
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            children.start(f"api-{n + 1}", "api", "--port", str(port))
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        if not args.without_pipeline:
            wait_ready(settings.stream.url, children, 120)
        for url in urls:
            wait_ready(url, children, 60, path="/readyz", what="the API")
        nginx = Nginx(urls, free_port(), workdir)
        wait_ready(nginx.url, children, 30, path="/healthz", what="nginx")

        run_load(urls[0], images, 10, 3)  # warm up: connections, caches, the JIT of the broker
        for label, url in (("1 instance", urls[0]), ("2 instances behind nginx", nginx.url)):
            for count in clients:
                load = run_load(url, images, count, args.seconds)
                orders += load.orders
                rows[f"{label}, {count} clients"] = load.figures()
                print(f"  {label}, {count} clients: {rows[f'{label}, {count} clients']}", file=sys.stderr)
        # the burst rows leave thousands of orders for the router and worker to answer, on the
        # same cores: drain them first, so that the half-load row measures the front door
        # beside a pipeline that keeps up, not beside a backlog
        counted = {"accepted": len(orders), "results": 0, "lost": 0, "duplicates": 0} if args.without_pipeline \
            else count_results(settings, orders, args.drain_timeout)
        capacity = max(v["accepted_per_s"] for k, v in rows.items() if k.startswith("1 instance"))
        half = run_load(urls[0], images, 50, min(args.seconds, 30), rate=capacity / 2)
        rows[f"1 instance, half capacity ({capacity / 2:.0f}/s open loop)"] = half.figures()
        if not args.without_pipeline:
            tail = count_results(settings, half.orders, args.drain_timeout)
            counted = {k: counted[k] + tail[k] for k in counted}
    finally:
        if nginx is not None:
            nginx.stop()
        children.stop()

    one = max(v["accepted_per_s"] for k, v in rows.items() if k.startswith("1 instance,") and "half" not in k)
    two = max(v["accepted_per_s"] for k, v in rows.items() if k.startswith("2 instances"))
    half_row = next(v for k, v in rows.items() if "half" in k)
    summary = {"engine_bills_per_s": engine_rate, "api_over_engine": one / engine_rate, "two_over_one": two / one,
               "half_load_p99_ms": half_row["p99_ms"], **counted}
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}))
        return 0
    print(describe())
    print(f"cores: {os.cpu_count()}, shared by every process (client, nginx, API instances, Kafka, MinIO, stream "
          "app, worker); none pinned")
    print(f"engine alone: {engine_rate:.2f} bills/s ({len(raw[:16])} receipts, all cores)\n")
    print("| row | accepted/s | p50 POST ms | p99 POST ms | errors |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        errors = ", ".join(f"{k}: {v}" for k, v in row["errors"].items()) or "none"
        print(f"| {name} | {row['accepted_per_s']:.0f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {errors} |")
    print(f"\nAPI / engine: {summary['api_over_engine']:.1f}x (target 20x); two instances / one: "
          f"{summary['two_over_one']:.2f}x (target 1.6x where the cores allow); p99 POST at half capacity: "
          f"{summary['half_load_p99_ms']:.0f} ms (target 100 ms)")
    if args.without_pipeline:
        print(f"results: not counted (--without-pipeline); {counted['accepted']} orders accepted")
        return 0
    print(f"results: {counted['accepted']} accepted orders, {counted['results']} results, lost {counted['lost']}, "
          f"duplicates {counted['duplicates']}")
    return 0 if counted["lost"] == 0 and counted["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
