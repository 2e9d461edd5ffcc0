"""End-to-end pipeline throughput and latency beside the bare engine, on the same bills and
cores, in one run: engine bills/s, pipeline bills/s with 1 and 2 workers, and for each the
submit→result latency p50/p95/p99 at a steady offered load of half the capacity just
measured for it, and cache-hit latency.

A shared machine's speed drifts by tens of percent within minutes, so a pipeline row's
throughput is compared with the bare engine run on the same bills just before and just
after it (the row's processes started and idle), and its half-load latency with the bare
engine's single-bill latency measured the same way, just before and just after that phase;
``--rounds N`` repeats the lot and the summary gives the median throughput ratio and the
p99s of all rounds' samples pooled (more samples, a steadier tail).

Needs the local stack (`billstream infra up`); uses its own topics and consumer groups and
deletes its topics after each row (a broker holding thousands of stale partitions spends
CPU on them that the engine then lacks).

    python -m bench.pipeline [--bills 120] [--rounds 1] [--cores 2] [--threads-per-worker N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from bench.machine import describe
from billstream_core.errors import BillstreamError, BrokerUnavailable, DecodeError
from billstream_core.kafka import ensure_topics, make_admin, make_consumer, wait_for_broker
from billstream_core.results_reader import ResultsReader
from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings, settings_env
from billstream_core.storage import ObjectStore
from inference_worker.loop import ENGINE_BATCH_MS
from infra.components import ComponentProcesses, wait_ready
from producers.samples import sample_bills
from producers.submit import BillSubmitter
from stream_app.router import KIND, RESULT, router_topics


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def delete_row_topics(settings: Settings) -> None:
    """The row's topics: its public ones, the router's and Faust's (named after the app id)."""
    admin = make_admin(settings.kafka)
    ours = {spec.name for spec in settings.topics.all()}
    names = [name for name in admin.list_topics(timeout=10).topics
             if name in ours or name.startswith(settings.stream.app_id + "-")]
    for name, future in admin.delete_topics(names, operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - a leftover topic is no reason to lose the table
            print(f"could not delete {name}: {exc}", file=sys.stderr)


def filesystem_type(path: str) -> str:
    """The type of the file system holding ``path`` here (its longest mount point), or "unknown"."""
    target, best = os.path.realpath(path), ("", "unknown")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                point, kind = line.split()[1:3]
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) > len(best[0]):
                    best = (point, kind)
    except OSError:
        pass
    return best[1]


def broker_log_storage(settings: Settings) -> str:
    """Where the broker keeps its log and on what file system: its appends' stalls on a slow
    disk land on every hop of a bill (see BILLSTREAM_INFRA__KAFKA_LOG_DIR). A broker that will
    not describe its configs (another cluster, no permission) gives "unknown", not a failed run."""
    admin = make_admin(settings.kafka)
    try:
        broker = next(iter(admin.list_topics(timeout=10).brokers))
        resource = ConfigResource(ResourceType.BROKER, str(broker))
        log_dirs = admin.describe_configs([resource])[resource].result(10)["log.dirs"].value or ""
    except (KafkaException, StopIteration, KeyError) as exc:
        print(f"bench.pipeline: the broker's log directory is unknown ({exc})", file=sys.stderr)
        return "unknown"
    return f"{log_dirs} ({filesystem_type(log_dirs.split(',')[0])})"


def partition_count_on_broker(settings: Settings) -> int:
    return sum(len(t.partitions) for t in make_admin(settings.kafka).list_topics(timeout=10).topics.values())


def p50_p99(steps: dict[str, list[float]]) -> dict[str, float]:
    """``{step}_p50`` and ``{step}_p99`` of each step with samples."""
    return {f"{name}_{q}": percentile(values, quantile) for name, values in steps.items() if values
            for q, quantile in (("p50", 0.5), ("p99", 0.99))}


def isolated(base: Settings, cores: int, workers: int, threads: int | None = None,
             nice: int = 0) -> tuple[Settings, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    topics = {"submitted": f"bench-{tag}.submitted", "work": f"bench-{tag}.work", "results": f"bench-{tag}.results",
              "dead_letter": f"bench-{tag}.dlq"}
    threads = threads or cores  # as a worker's default (all cores): alone at half load, each has them all
    settings = load_settings(topics=topics, stream={"app_id": f"bench-stream-{tag}", "web_port": 16100 + os.getpid() % 800},
                             worker={"group_id": f"bench-workers-{tag}", "threads": threads, "max_batch": 8,
                                     "max_wait_ms": 50, "nice": nice})
    ensure_topics(settings.kafka, settings.topics.all())
    return settings, {**os.environ, **settings_env(settings), "OMP_NUM_THREADS": str(threads)}


class ResultWatcher:
    """Records when each order's result becomes visible to a read_committed reader."""

    def __init__(self, settings: Settings) -> None:
        self.seen: dict[str, float] = {}
        self.seen_ms: dict[str, tuple[float, int]] = {}  # wall clock when seen, the record's CreateTime
        self.engine_span: dict[str, tuple[int, float]] = {}  # result built at (epoch ms), its engine batch's ms
        self.prepare_ms: dict[str, tuple[float, float]] = {}  # the worker's fetch and decode of the image, ms
        self.reader = ResultsReader(settings.kafka, settings.topics.results, group_prefix="bench")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            found = self.reader.poll(0.1)
            if found is None or not found.order_number or found.order_number in self.seen:
                continue
            order, message = found.order_number, found.message
            self.seen[order] = time.monotonic()
            self.seen_ms[order] = (time.time() * 1000, message.timestamp()[1])
            if found.record is None:
                continue
            timings = found.record["timings_ms"]
            batch_ms = dict(message.headers() or []).get(ENGINE_BATCH_MS)
            if batch_ms is not None:
                self.engine_span[order] = (found.record["completed_at_ms"], float(batch_ms))
                self.prepare_ms[order] = (timings.get("fetch_ms", 0.0), timings.get("decode_ms", 0.0))

    def wait(self, orders: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not orders <= self.seen.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(orders - self.seen.keys())} results missing after {timeout:.0f}s")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.reader.close()


def record_times(settings: Settings, topic: str, orders: set[str]) -> dict[str, int]:
    """CreateTime (ms) of each order's BillSubmitted record in ``topic`` (read to its end)."""
    reader = make_consumer(settings.kafka, f"bench-{uuid.uuid4().hex}", read_committed=True)
    decoder, found = codec("BillSubmitted"), dict[str, int]()
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        idle_until = time.monotonic() + 5
        while time.monotonic() < idle_until and len(found) < len(orders):
            message = reader.poll(0.2)
            if message is None or message.error() is not None:
                continue
            idle_until = time.monotonic() + 5
            if dict(message.headers() or []).get(KIND) == RESULT:  # the by-image topic also carries results
                continue
            try:
                order = decoder.decode(message.value() or b"")["order_number"]
            except DecodeError:
                continue  # not a submission this run made
            if order in orders:
                found[order] = message.timestamp()[1]
    finally:
        reader.close()
    return found


def cache_hops(settings: Settings, started_ms: dict[str, float], seen_ms: dict[str, tuple[float, int]]) -> dict[str, float]:
    """p50 and p99 ms of each step of a cache hit: the client's submit call (upload + produce), then
    either the router's first hop answering it, or its repartition hop and its answering hop
    (a repeat the first hop did not know yet), and the commit until a reader sees it."""
    orders = set(started_ms)
    submitted = record_times(settings, settings.topics.submitted, orders)
    by_image = record_times(settings, router_topics(settings).by_image.name, orders)
    steps: dict[str, list[float]] = {"submit_call_ms": [], "first_hop_ms": [], "repartition_ms": [], "answer_ms": [],
                                     "visible_ms": []}
    for order in orders & submitted.keys() & seen_ms.keys():
        seen_wall, result_ms = seen_ms[order]
        steps["submit_call_ms"].append(submitted[order] - started_ms[order])
        if order in by_image:
            steps["repartition_ms"].append(by_image[order] - submitted[order])
            steps["answer_ms"].append(result_ms - by_image[order])
        else:
            steps["first_hop_ms"].append(result_ms - submitted[order])
        steps["visible_ms"].append(seen_wall - result_ms)
    return p50_p99(steps) | {"first_hop_share": len(steps["first_hop_ms"]) / max(1, len(steps["visible_ms"]))}


def wait_for_group(settings: Settings, members: int, timeout: float) -> None:
    """Until the worker group is stable with ``members`` members, each holding partitions, so
    that no run starts while one worker does all the work (the others still joining)."""
    admin = make_admin(settings.kafka)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group = admin.describe_consumer_groups([settings.worker.group_id])[settings.worker.group_id].result(10)
        holding = [m for m in group.members if m.assignment and m.assignment.topic_partitions]
        if str(group.state).endswith("STABLE") and len(group.members) == members == len(holding):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the worker group did not settle with {members} members within {timeout:.0f}s")


def new_bill_steps(settings: Settings, orders: set[str], watcher: ResultWatcher) -> dict[str, float]:
    """p50 and p99 ms of each step of a new bill at half load, by the records' Kafka timestamps
    and the result's own clock: the router (submitted → work: one transaction with one router,
    two with several), the worker's wait before its engine batch starts (poll, fetch, decode,
    a batch still running), of which the image's fetch from storage and its decoding, the
    rest (``deliver_ms``: the router's commit, the worker's fetch from Kafka and its loop), the
    engine batch, and the worker's commit until a read_committed reader sees it."""
    submitted = record_times(settings, settings.topics.submitted, orders)
    work = record_times(settings, settings.topics.work, orders)
    steps: dict[str, list[float]] = {"router_ms": [], "worker_ms": [], "before_engine_ms": [], "deliver_ms": [],
                                     "fetch_ms": [], "decode_ms": [], "engine_ms": [], "commit_visible_ms": [],
                                     "visible_ms": []}
    for order in orders & submitted.keys() & work.keys() & watcher.seen_ms.keys():
        seen_wall, result_ms = watcher.seen_ms[order]
        steps["router_ms"].append(work[order] - submitted[order])
        steps["worker_ms"].append(result_ms - work[order])
        steps["visible_ms"].append(seen_wall - result_ms)
        if order in watcher.engine_span:
            completed_ms, engine_ms = watcher.engine_span[order]
            before_engine_ms = completed_ms - engine_ms - work[order]
            fetch_ms, decode_ms = watcher.prepare_ms[order]
            steps["before_engine_ms"].append(before_engine_ms)
            steps["fetch_ms"].append(fetch_ms)
            steps["decode_ms"].append(decode_ms)
            steps["deliver_ms"].append(before_engine_ms - fetch_ms - decode_ms)
            steps["engine_ms"].append(engine_ms)
            steps["commit_visible_ms"].append(seen_wall - completed_ms)
    return p50_p99(steps)


def load_engine(cores: int, settings: Settings) -> Any:
    """The bare engine as a worker would run it (same backend, device and decoder)."""
    import torch

    from models.engine.predictor import OcrEngine, serving_options

    torch.set_num_threads(cores)
    worker = settings.worker
    return OcrEngine.load(options=serving_options(worker.backend, worker.device, cores, worker.decoder))


@dataclass
class BareEngine:
    """The bare engine on the bench's bills: ``images`` for throughput, ``fresh`` (the
    half-load bills) for single-bill latency."""

    engine: Any
    images: list[bytes]
    fresh: list[bytes]
    settings: Settings

    def rate(self) -> float:
        """Bills/s in batches of 8, each bill decoded from its bytes as a worker does."""
        from models.intake import decode_image

        started = time.perf_counter()
        for i in range(0, len(self.images), 8):
            self.engine.read_pages([decode_image(data, self.settings.limits).gray for data in self.images[i:i + 8]])
        return len(self.images) / (time.perf_counter() - started)

    def singles(self) -> list[float]:
        """Seconds per bill, one bill at a time, over the half-load bills."""
        out = []
        for image in self.fresh:
            started = time.perf_counter()
            self.engine.read_image_bytes(image)
            out.append(time.perf_counter() - started)
        return out

    def figures(self) -> dict[str, Any]:
        self.engine.read_image_bytes(self.images[0])
        singles = self.singles()
        return {"bills_per_s": self.rate(), "single_p50_s": percentile(singles, 0.5),
                "single_p99_s": percentile(singles, 0.99), "singles_s": singles}


def pipeline_run(base: Settings, images: list[bytes], fresh: list[bytes], cores: int, workers: int, log_dir: Path,
                 bare: BareEngine, threads: int | None = None, nice: int = 0) -> dict[str, Any]:
    """Throughput over ``images`` (staged beforehand, hashed, checked and uploaded, as clients on
    other machines would; the clock runs from the first event published to the last result visible),
    bracketed by bare-engine runs just before and after it, with the pipeline started and
    idle (this machine's speed drifts by tens of percent within minutes), then latency at
    half that rate over ``fresh`` (submit, upload included, to visible), bracketed the same
    way by the bare engine's single-bill latency on the same bills, then each of ``fresh``
    again as a cache hit; every run has its own topics and stream app (cold cache)."""
    settings, env = isolated(base, cores, workers, threads, nice)
    children = ComponentProcesses(log_dir / f"{workers}-workers", env=env)
    watcher = ResultWatcher(settings)
    out: dict[str, Any] = {}
    try:
        children.start("stream-app", "stream-app")
        for n in range(workers):
            children.start(f"worker-{n}", "worker", "--instance-id", f"bench-{n}-{uuid.uuid4().hex[:6]}")
        wait_ready(settings.stream.url, children, 120)
        wait_for_group(settings, workers, 120)
        submitter = BillSubmitter(settings, source="bench")
        # warm as the bare engine is (it ran the singles first): models loaded, full batches seen
        warm = {submitter.submit(image, flush=False).order_number for image in sample_bills(16, run=999_999 - workers)}
        submitter.flush()
        watcher.wait(warm, 300)
        # clients check and upload from their own machines: staged before the clock, which
        # starts at the first event; their hashing and existence checks are not this machine's
        staged = [submitter.stage(image) for image in images]
        before = bare.rate()
        started = time.monotonic()
        orders = {submitter.publish(bill, flush=False).order_number for bill in staged}
        submitter.flush()
        watcher.wait(orders, 600)
        out["bills_per_s"] = len(images) / (max(watcher.seen[o] for o in orders) - started)
        out["engine_bracket"] = [before, bare.rate()]
        out["engine_bills_per_s"] = sum(out["engine_bracket"]) / 2
        half_load = out["bills_per_s"] / 2
        singles = bare.singles()
        submit_times: dict[str, float] = {}
        interval = 1.0 / half_load
        next_at = time.monotonic()
        for image in fresh:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            t0 = time.monotonic()
            submit_times[submitter.submit(image).order_number] = t0
        watcher.wait(set(submit_times), 600)
        latencies = [watcher.seen[o] - t for o, t in submit_times.items()]
        singles += bare.singles()
        out |= {"singles_bracket_s": singles, "engine_single_p99_s": percentile(singles, 0.99)}
        out |= {"offered_per_s": half_load, "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
                "p99_s": percentile(latencies, 0.99), "latencies_s": latencies}
        out |= {f"new_{k}": v for k, v in new_bill_steps(settings, set(submit_times), watcher).items()}
        cache_times: dict[str, float] = {}
        cache_wall: dict[str, float] = {}
        for image in fresh:  # repeats: answered by the stream app from its table
            t0, wall = time.monotonic(), time.time() * 1000
            order = submitter.submit(image).order_number
            cache_times[order], cache_wall[order] = t0, wall
            time.sleep(0.05)
        watcher.wait(set(cache_times), 120)
        cache = [watcher.seen[o] - t for o, t in cache_times.items()]
        out |= {"cache_p50_s": percentile(cache, 0.5), "cache_p99_s": percentile(cache, 0.99), "cache_s": cache}
        out |= {f"cache_{k}": v for k, v in cache_hops(settings, cache_wall, watcher.seen_ms).items()}
    finally:
        watcher.close()
        children.stop()
        delete_row_topics(settings)
    return out


def pooled_summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per pipeline row: the median of the rounds' throughput ratios, and p99s over every
    round's samples pooled, the latency one against the pooled single-bill p99 of the bare
    engine runs that bracketed the row's half-load phases."""
    singles = [s for r in rounds for s in r["engine"]["singles_s"]]
    engine_p99 = percentile(singles, 0.99)
    summary: dict[str, dict[str, float]] = {"engine": {"single_p99_s": engine_p99, "samples": len(singles)}}
    for name in (n for n in rounds[0] if n != "engine"):
        rows = [r[name] for r in rounds]
        latencies = [x for row in rows for x in row["latencies_s"]]
        bracket = [x for row in rows for x in row["singles_bracket_s"]]
        cache = [x for row in rows for x in row["cache_s"]]
        summary[name] = {
            "throughput_ratio": median(row["bills_per_s"] / row["engine_bills_per_s"] for row in rows),
            "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
            "engine_single_p99_s": percentile(bracket, 0.99),
            "p99_ratio": percentile(latencies, 0.99) / percentile(bracket, 0.99),
            "cache_p50_s": percentile(cache, 0.5), "cache_p99_s": percentile(cache, 0.99), "samples": len(latencies),
        }
    return summary


def print_round(rows: dict[str, dict[str, Any]], label: str) -> None:
    engine = rows["engine"]
    for name, row in rows.items():
        bracket = row.get("engine_bracket")
        cells = [f"{row['bills_per_s']:.2f}", f"{row['bills_per_s'] / row.get('engine_bills_per_s', engine['bills_per_s']):.2f}x"
                 + (f" (engine {bracket[0]:.2f} / {bracket[1]:.2f} before / after)" if bracket else "")]
        cells += [f"{row[k]:.3f}" if k in row else "-" for k in ("p50_s", "p95_s", "p99_s", "cache_p50_s", "cache_p99_s")]
        print(f"| {label}{name} | " + " | ".join(cells) + " |")


def print_steps(rows: dict[str, dict[str, Any]], label: str) -> None:
    for name, row in rows.items():
        for prefix, what in (("new_", "new bill at half load"), ("cache_", "cache hit")):
            steps = [k.removeprefix(prefix).removesuffix("_p50") for k in row if k.startswith(prefix) and k.endswith("_ms_p50")]
            if steps:
                print(f"{label}{name}: {what}, ms per step (p50/p99): " + ", ".join(
                    f"{k} {row[f'{prefix}{k}_p50']:.0f}/{row[f'{prefix}{k}_p99']:.0f}" for k in steps)
                    + (f" ({row.get('cache_first_hop_share', 0):.0%} answered in the first hop)" if prefix == "cache_" else ""))
        if "p99_s" in row:
            print(f"{label}{name}: p99 at {row['offered_per_s']:.2f} bills/s offered (half its capacity) = "
                  f"{row['p99_s'] / row['engine_single_p99_s']:.2f}x the bare engine's single-bill p99 "
                  f"just before and after ({row['engine_single_p99_s']:.3f}s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=120, help="bills per phase (default 120)")
    parser.add_argument("--rounds", type=int, default=1, help="engine + pipeline rounds, one after another")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="cores shared by the workers")
    parser.add_argument("--threads-per-worker", type=int, default=None,
                        help="engine threads of each worker (default: all the cores, as the worker's own default)")
    parser.add_argument("--worker-nice", type=int, default=0, choices=range(20), metavar="0-19",
                        help="the workers' niceness (BILLSTREAM_WORKER__NICE)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.bills < 2 or args.rounds < 1:
        parser.error("--bills must be at least 2 and --rounds at least 1")
    base = load_settings()
    try:  # the run needs the stack; without it, one line instead of a traceback minutes in
        wait_for_broker(base.kafka, timeout_s=10)
        ObjectStore(base.storage).ensure_bucket()
    except BrokerUnavailable as exc:  # its message says how to start it
        print(f"bench.pipeline: {exc}", file=sys.stderr)
        return 1
    except BillstreamError as exc:
        print(f"bench.pipeline: {exc}; start it with `billstream infra up`", file=sys.stderr)
        return 1
    stale = partition_count_on_broker(base)
    broker_log = broker_log_storage(base)
    seed = int(time.time()) % 100000
    images, fresh = sample_bills(args.bills, run=seed), sample_bills(args.bills, run=seed + 1)  # the same for every row
    log_dir = base.infra.resolved_state_dir / "logs" / "bench"
    bare = BareEngine(load_engine(args.cores, base), images, fresh, base)
    rounds: list[dict[str, dict[str, Any]]] = []
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}: measuring the bare engine…", file=sys.stderr, flush=True)
        rows = {"engine": bare.figures()}
        for workers in (1, 2):
            print(f"round {n + 1}/{args.rounds}: measuring the pipeline with {workers} worker(s)…", file=sys.stderr, flush=True)
            rows[f"pipeline, {workers} worker(s)"] = pipeline_run(
                base, images, fresh, args.cores, workers, log_dir, bare, args.threads_per_worker, args.worker_nice)
        rounds.append(rows)
    summary = pooled_summary(rounds)
    if args.json:
        samples = ("singles_s", "singles_bracket_s", "latencies_s", "cache_s")
        print(json.dumps({"rounds": [{name: {k: v for k, v in row.items() if k not in samples} for name, row in r.items()}
                                     for r in rounds], "summary": summary, "broker_log": broker_log}))
        return 0
    print(describe())
    print(f"inputs: {args.bills} rendered sample bills per phase, {args.rounds} round(s), backend {base.worker.backend}, "
          f"decoder {base.worker.decoder}, {args.cores} cores shared by the workers ("
          f"{args.threads_per_worker or args.cores} engine threads each, niceness {args.worker_nice}); "
          f"{stale} partitions on the broker before the run, its log in {broker_log}; "
          "latency = submit until the result is visible to a read_committed reader")
    print("| run | bills/s | vs engine (a pipeline row: the mean of its bracket) | p50 s | p95 s | p99 s | cache p50 s | cache p99 s |")
    print("|---|---|---|---|---|---|---|---|")
    for n, rows in enumerate(rounds):
        print_round(rows, f"round {n + 1}: " if args.rounds > 1 else "")
    for n, rows in enumerate(rounds):
        print_steps(rows, f"round {n + 1}: " if args.rounds > 1 else "")
    engine_p99 = summary["engine"]["single_p99_s"]
    print(f"summary over {args.rounds} round(s), samples pooled; the rounds' engine rows: single-bill p99 {engine_p99:.3f}s "
          f"({summary['engine']['samples']:.0f} bills); targets: throughput >= 0.9x, p99 <= 1.5x, cache p99 <= 50 ms")
    print("| pipeline | throughput vs the engine just before and after it (median of rounds) | p50 s | p99 s "
          "| engine single-bill p99 s, just before and after | p99 vs engine single-bill p99 | cache p50 ms | cache p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in summary.items():
        if name != "engine":
            print(f"| {name} | {row['throughput_ratio']:.2f}x | {row['p50_s']:.3f} | {row['p99_s']:.3f} | "
                  f"{row['engine_single_p99_s']:.3f} | {row['p99_ratio']:.2f}x | "
                  f"{row['cache_p50_s'] * 1000:.0f} | {row['cache_p99_s'] * 1000:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
