"""`python -m bench.faults.soak [--bills 20000] [--kill-every 180]`: a long run of mostly
repeated bills (real traffic has repeats) on a stack of its own, with one component killed
(-9) and restarted every few minutes, in a shuffled round: each worker, each stream app,
MinIO and the broker.

It prints the outcome (lost, duplicates), the memory of each process over the run, and
the end-to-end latency (acknowledged submission → result read, read_committed) per
window. The memory line that matters: the stream app must not grow with the orders it has
seen (its orders table and the router's state live in RocksDB, not in the heap).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.faults.harness import Pipeline, isolated, running
from bench.machine import describe
from bench.stacks import free_port, scratch_stack
from infra.stack import LocalStack

VICTIMS = ("worker-1", "worker-2", "stream-2", "stream-1", "minio", "kafka")
DOWN_S = 5.0  # how long a killed component stays down before it is started again
MIN_ORDERS = 1000  # fewer orders in a process's life than this: no growth rate (noise)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Incarnation:
    """One process's life between two kills: (seconds into the run, orders submitted so far, RSS MB)."""
    name: str
    samples: list[tuple[float, int, float]] = field(default_factory=list)

    def growth(self) -> tuple[float, float, int] | None:
        """(first RSS after warm-up, last RSS, orders submitted in between); warm-up: the
        first two samples (model and caches loading)."""
        if len(self.samples) < 4:
            return None
        (_, orders0, rss0), (_, orders1, rss1) = self.samples[2], self.samples[-1]
        return rss0, rss1, orders1 - orders0


class Soak:
    def __init__(self, stack: LocalStack, pipe: Pipeline, seed: int) -> None:
        self.stack, self.pipe = stack, pipe
        self.random = random.Random(seed)
        self.lives: dict[str, list[Incarnation]] = {}
        self.kills: list[tuple[float, str]] = []
        self.queue: list[str] = []
        self.ports = {"stream-1": pipe.settings.stream.web_port, "stream-2": free_port()}

    def pids(self) -> dict[str, int]:
        pids = {name: child.process.pid for name, child in self.pipe.procs.items() if child.process.poll() is None}
        for name, process in (("minio", self.stack.minio.process), ("kafka", self.stack.kafka.process)):
            running = process.running()
            if running is not None:
                pids[name] = running.pid
        return pids

    def sample(self, at: float, orders: int) -> None:
        for name, pid in self.pids().items():
            rss = rss_mb(pid)
            if rss is not None:
                lives = self.lives.setdefault(name, [Incarnation(name)])
                lives[-1].samples.append((at, orders, rss))

    def kill_one(self, at: float) -> str:
        """The next victim of a shuffled round of every component, so that a run of N rounds
        kills each one N times."""
        if not self.queue:
            self.queue = self.random.sample(VICTIMS, len(VICTIMS))
        victim = self.queue.pop()
        self.kills.append((at, victim))
        if victim in ("minio", "kafka"):
            component = self.stack.minio if victim == "minio" else self.stack.kafka
            running = component.process.running()
            if running is not None:
                os.kill(running.pid, signal.SIGKILL)
            time.sleep(DOWN_S)
            component.start()
            self.stack.wait_ready()
        else:
            self.pipe.procs[victim].kill()
            time.sleep(DOWN_S)
            if victim.startswith("worker"):
                self.pipe.worker(victim)
            else:
                self.pipe.stream_app(victim, self.ports[victim])
        self.lives.setdefault(victim, [Incarnation(victim)]).append(Incarnation(victim))
        return victim


def run_soak(stack: LocalStack, bills: int, rate: float, kill_every: float, repeat_share: float, sample_s: float,
             window_s: float, log_dir: Path, seed: int) -> bool:
    settings = isolated(stack.settings)
    pipe = Pipeline(settings, log_dir)
    soak = Soak(stack, pipe, seed)
    for name in ("stream-1", "stream-2"):
        pipe.stream_app(name, soak.ports[name])
    pipe.worker("worker-1")
    pipe.worker("worker-2")
    pipe.wait_ready()
    started = time.monotonic()
    try:
        with running(settings, rate, repeat_share=repeat_share) as run:
            next_kill, next_sample = started + kill_every, started
            while len(run.load.submitted) < bills:
                now = time.monotonic()
                if now >= next_sample:
                    soak.sample(now - started, len(run.load.submitted))
                    next_sample = now + sample_s
                if now >= next_kill:
                    victim = soak.kill_one(now - started)
                    print(f"[soak] {now - started:.0f}s: killed and restarted {victim}; "
                          f"{len(run.load.submitted)} submitted, {len(run.tally.arrivals)} with a result",
                          file=sys.stderr, flush=True)
                    next_kill = time.monotonic() + kill_every
                time.sleep(0.5)
            run.drain(timeout=900)
            soak.sample(time.monotonic() - started, len(run.load.submitted))
            row = run.row("soak")
            latencies = [(records[0][0], records[0][0] - run.load.submitted[o])
                         for o, records in list(run.tally.arrivals.items()) if o in run.load.submitted]
    finally:
        pipe.stop()
    print(describe())
    print(f"load: {bills} bills at {rate:g}/s, {repeat_share:.0%} repeats; one component killed (-9) every "
          f"{kill_every:g}s, down {DOWN_S:g}s; logs in {log_dir}")
    print(f"\n| submitted | results | lost | duplicates | kills | minutes |\n|---|---|---|---|---|---|\n"
          f"| {row.submitted} | {row.results} | **{row.lost}** | **{row.duplicates}** | {len(soak.kills)} "
          f"| {(time.monotonic() - started) / 60:.1f} |")
    print("\nkills: " + ", ".join(f"{at / 60:.1f} min {victim}" for at, victim in soak.kills))
    print("\nmemory (RSS), per process life of at least four samples: after warm-up → at its end\n")
    print(f"| process | life | RSS MB after warm-up | RSS MB at end | orders in between | MB per 1,000 orders "
          f"(from {MIN_ORDERS}) |")
    print("|---|---|---|---|---|---|")
    for name in sorted(soak.lives):
        for n, life in enumerate(soak.lives[name], 1):
            grown = life.growth()
            if grown is None:
                continue
            first, last, orders = grown
            per = f"{(last - first) / orders * 1000:+.2f}" if orders >= MIN_ORDERS else "-"
            print(f"| {name} | {n} | {first:.0f} | {last:.0f} | {orders} | {per} |")
    names = sorted(soak.lives)
    print(f"\nRSS MB over the run, every {window_s:g} s (a restarted process starts a new life)\n")
    print("| minute | orders | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    samples = {name: sorted(s for life in soak.lives[name] for s in life.samples) for name in names}
    end = max((s[-1][0] for s in samples.values() if s), default=0.0)
    mark = window_s
    while mark <= end + window_s:
        latest = [max((s for s in samples[name] if s[0] <= mark), default=None) for name in names]
        orders = max((s[1] for s in latest if s is not None), default=0)
        print(f"| {mark / 60:.0f} | {orders} | " + " | ".join("-" if s is None else f"{s[2]:.0f}" for s in latest)
              + " |")
        mark += window_s
    print(f"\nend-to-end latency per {window_s:g} s window (by arrival of the result)\n")
    print("| window (min) | results | p50 s | p99 s |")
    print("|---|---|---|---|")
    if latencies:
        first_at = min(t for t, _ in latencies)
        windows: dict[int, list[float]] = {}
        for at, latency in latencies:
            windows.setdefault(int((at - first_at) // window_s), []).append(latency)
        for index in sorted(windows):
            values = sorted(windows[index])
            p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
            print(f"| {index * window_s / 60:.1f}-{(index + 1) * window_s / 60:.1f} | {len(values)} "
                  f"| {statistics.median(values):.2f} | {p99:.2f} |")
    return row.passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bills", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=25.0, help="bills a second")
    parser.add_argument("--repeats", type=float, default=0.9, help="share of bills that repeat an earlier image")
    parser.add_argument("--kill-every", type=float, default=180.0, help="seconds between kills")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between memory samples")
    parser.add_argument("--window", type=float, default=120.0, help="seconds per latency window")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--logs", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)
    logging.getLogger("billstream.audit").setLevel(logging.WARNING)
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="bench-soak-logs-"))
    with scratch_stack() as (stack, _):
        passed = run_soak(stack, args.bills, args.rate, args.kill_every, args.repeats, args.sample, args.window,
                          log_dir, args.seed)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
