"""What every fault case shares: the pipeline's processes, a steady load of bills with a
share of repeats (the cache and single flight in play), a read_committed tally of the
results, and the row each case prints.

A case calls :meth:`Run.load_for` before and after its fault; the load keeps going through
the fault (a client blocked on a dead broker waits, as a real one would). An order counts
as submitted once the broker acknowledged its event; one whose submission raised is the
client's to retry and is counted apart (``refused``), not as lost.
"""
from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stacks import isolated_settings
from billstream_core.errors import BillstreamError
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings, settings_env
from infra.components import ChildProcess, ComponentProcesses, wait_ready
from producers.samples import render_bill
from producers.submit import BillSubmitter


@dataclass
class Row:
    case: str
    submitted: int
    results: int
    lost: int
    duplicates: int
    recovery_s: float | None
    longest_gap_s: float | None = None  # the longest stretch without a result, from the fault to the drain
    notes: str = ""

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def isolated(base: Settings, *, worker: dict[str, Any] | None = None) -> Settings:
    """Fresh topics, groups and app id on ``base``'s services, so cases never share state."""
    return isolated_settings(base, partitions=6, worker=worker, prefix="f")


class Pipeline(ComponentProcesses):
    """Stream apps and workers as child processes on ``settings``; a case kills and starts
    them again by name."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        super().__init__(log_dir, {**os.environ, **settings_env(settings)})
        self.settings = settings

    def stream_app(self, name: str = "stream-1", web_port: int | None = None) -> ChildProcess:
        port = web_port or self.settings.stream.web_port
        return self.start(name, "stream-app", "--instance-id", name,
                          env={"BILLSTREAM_STREAM__WEB_PORT": str(port)})

    def worker(self, name: str, bootstrap_servers: str | None = None) -> ChildProcess:
        """``bootstrap_servers``: where this worker reaches Kafka, when not where the rest do
        (through a proxy)."""
        env = {"BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers} if bootstrap_servers else None
        return self.start(name, "worker", "--instance-id", name, env=env)

    def wait_ready(self, timeout: float = 180) -> None:
        """Until the stream app is ready; every process started must still run."""
        wait_ready(self.settings.stream.url, self, timeout)


@dataclass
class Tally:
    """Every result record of the run (read_committed), by order, with its arrival time."""
    settings: Settings
    arrivals: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._reader = ResultsReader(self.settings.kafka, self.settings.topics.results, start="beginning",
                                     group_prefix="billstream-results-faults")
        self._thread = threading.Thread(target=self._run, daemon=True, name="tally")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self._reader.poll(0.5)
            except BillstreamError:
                continue  # the broker is away: the reader catches up when it is back
            if result is not None and result.record is not None:
                self.arrivals[result.order_number].append((time.monotonic(), result.record))

    def times(self) -> list[float]:
        return sorted(t for records in list(self.arrivals.values()) for t, _ in records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._reader.close()


class Load:
    """Bills at a steady rate from one thread; ``repeat_share`` of them repeat an image sent
    before (answered from the cache, or waiting on it: single flight)."""

    def __init__(self, settings: Settings, *, rate: float = 3.0, repeat_share: float = 0.3, seed: int = 7) -> None:
        self.settings, self.rate, self.repeat_share = settings, rate, repeat_share
        self.submitter = BillSubmitter(settings, source="faults")
        self.random = random.Random(seed)
        self.tag = uuid.uuid4().hex[:6]
        self.images: list[bytes] = []
        self.submitted: dict[str, float] = {}  # order → when the broker acknowledged it
        self.refused: list[str] = []  # submissions that raised: the client knows, and would retry
        self.expected: dict[str, tuple[str, str | None]] = {}  # special orders: (status, error code)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def _image(self) -> bytes:
        if self.images and self.random.random() < self.repeat_share:
            return self.random.choice(self.images)
        n = len(self.images)
        image = render_bill([f"FAULTS {self.tag} SHOP {n}", f"ITEM {n % 7} {n}.{n % 100:02d}", f"TOTAL {n}.50"])
        self.images.append(image)
        return image

    def _run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while self._running.is_set():
            image = self._image()
            try:
                order = self.submitter.submit(image).order_number
                self.submitted[order] = time.monotonic()
            except BillstreamError as exc:
                self.refused.append(str(exc)[:200])
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - period)  # after a stall, no catch-up burst

    def burst(self, count: int) -> None:
        """``count`` new images at once (a backlog the workers are still fetching when a
        fault strikes), from a submitter of its own beside the steady load."""
        submitter = BillSubmitter(self.settings, source="faults")
        staged = []
        for n in range(count):
            image = render_bill([f"BURST {self.tag} {n}", f"ITEM {n} {n}.25", f"TOTAL {n}.99"])
            staged.append(submitter.stage(image))
        for bill in staged:
            submitter.publish(bill, flush=False)
        submitter.flush()
        now = time.monotonic()
        self.submitted.update({bill.order_number: now for bill in staged})

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="load")
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(120)


@dataclass
class Run:
    """One case's run: the load, the tally, and the fault's times."""
    settings: Settings
    load: Load
    tally: Tally
    fault_at: float = 0.0
    healed_at: float = 0.0

    def load_for(self, seconds: float) -> None:
        time.sleep(seconds)

    def fault(self) -> None:
        self.fault_at = time.monotonic()

    def healed(self) -> None:
        self.healed_at = time.monotonic()

    def drain(self, timeout: float = 300.0) -> None:
        """Stop the load; wait until every submitted order has a result (or the timeout),
        then a little longer, so a late duplicate would be seen."""
        self.load.stop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(self.load.submitted) <= self.tally.arrivals.keys():
            time.sleep(0.5)
        time.sleep(5)

    def row(self, case: str, notes: str = "") -> Row:
        submitted = set(self.load.submitted) | set(self.load.expected)
        found = {o: v for o, v in list(self.tally.arrivals.items()) if o in submitted}
        wrong = [o for o, (status, code) in self.load.expected.items()
                 if o in found and (found[o][0][1]["status"], found[o][0][1].get("error_code")) != (status, code)]
        extra = f"; {len(self.load.refused)} submissions refused while the fault lasted" if self.load.refused else ""
        mismatch = f"; {len(wrong)} special orders with the wrong outcome: {wrong[:3]}" if wrong else ""
        return Row(case, len(submitted), sum(len(v) for v in found.values()), len(submitted - found.keys()),
                   sum(len(v) - 1 for v in found.values() if len(v) > 1), self.recovery_seconds(),
                   self.longest_gap(), notes + extra + mismatch)

    def longest_gap(self) -> float | None:
        times = [t for t in self.tally.times() if t >= self.fault_at]
        if len(times) < 2:
            return None
        edges = [self.fault_at, *times]
        return round(max(b - a for a, b in zip(edges, edges[1:])), 1)

    def recovery_seconds(self, window: float = 5.0) -> float | None:
        """From the heal until results flow at ≥ 80% of the rate before the fault."""
        times = self.tally.times()
        before = [t for t in times if self.fault_at - 15 <= t < self.fault_at]
        rate = len(before) / 15
        if rate == 0 or not self.healed_at:
            return None
        t = self.healed_at
        while t < (times[-1] if times else t):
            if sum(1 for x in times if t <= x < t + window) >= 0.8 * rate * window:
                return round(t - self.healed_at, 1)
            t += 0.5
        return None


@contextmanager
def running(settings: Settings, rate: float, repeat_share: float = 0.3) -> Iterator[Run]:
    tally = Tally(settings)
    load = Load(settings, rate=rate, repeat_share=repeat_share)
    load.start()
    try:
        yield Run(settings, load, tally)
    finally:
        load.stop()
        tally.close()
