"""Batch backfill: submit every image of a directory or manifest, resumably.

Bounded concurrency for the uploads, an optional rate limit, and a local ledger (JSON
lines: path, sha256, order number) so a re-run skips what the broker already confirmed.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from billstream_core.errors import BillstreamError, DeliveryError, StorageFull
from billstream_core.media import list_images
from billstream_core.order_numbers import new_order_number
from billstream_core.storage import sha256_hex
from producers.submit import BillSubmitter


def list_inputs(source: Path) -> list[Path]:
    """A directory (recursively, image suffixes) or a manifest file of one path per line."""
    if source.is_dir():
        return list_images(source, recursive=True)
    if source.is_file():
        base = source.parent
        paths = []
        for line in source.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line.split("\t")[0])
                paths.append(path if path.is_absolute() else base / path)
        return paths
    raise BillstreamError(f"{source} is neither a directory nor a manifest file")


class Ledger:
    """Append-only record of submitted files; keyed by path + content hash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.done: dict[tuple[str, str], str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.done[(entry["path"], entry["sha256"])] = entry["order_number"]
                except (ValueError, KeyError):
                    continue  # a torn last line after a crash
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, path: str, digest: str, order_number: str) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"path": path, "sha256": digest, "order_number": order_number}) + "\n")
            self.done[(path, digest)] = order_number


class RateLimiter:
    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


@dataclass
class BackfillReport:
    total: int = 0
    submitted: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    halted: str | None = None  # why it stopped before the end (the rest is not in the ledger: run it again)


def backfill(submitter: BillSubmitter, paths: list[Path], ledger: Ledger, *, concurrency: int = 8,
             rate: float | None = None, on_progress: Callable[[str], None] | None = None) -> BackfillReport:
    """Submit every path not yet in the ledger. A bill enters the ledger only once the broker
    has confirmed its event, so a run that crashed or met delivery errors is resumed by
    running it again: what was not confirmed is submitted again, what was is skipped."""
    report = BackfillReport(total=len(paths))
    limiter = RateLimiter(rate)
    started = time.monotonic()
    tick = on_progress or (lambda outcome: None)
    lock = threading.Lock()

    unconfirmed: set[str] = set()  # published, outcome not heard yet

    def outcome(path: Path, kind: str, error: str | None = None) -> None:
        with lock:
            unconfirmed.discard(str(path))
            if kind == "submitted":
                report.submitted += 1
            elif kind == "skipped":
                report.skipped += 1
            else:
                report.failed[str(path)] = error or "failed"
        tick(kind)

    def one(path: Path) -> None:
        data = path.read_bytes()
        digest = sha256_hex(data)
        if (str(path), digest) in ledger.done:
            outcome(path, "skipped")
            return
        limiter.wait()
        order = new_order_number()

        def delivered(error: str | None) -> None:  # on a thread that polls the producer
            if error is None:
                ledger.record(str(path), digest, order)
                outcome(path, "submitted")
            else:
                outcome(path, "failed", f"DeliveryError: {error}")

        with lock:
            unconfirmed.add(str(path))
        try:
            submitter.submit(data, order_number=order, attributes={"backfill_path": path.name}, flush=False,
                             on_delivery=delivered)
        except BaseException:
            with lock:
                unconfirmed.discard(str(path))
            raise

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: dict[Future[None], Path] = {}
        for path in paths:  # at most 2 x concurrency files in memory at once
            if report.halted is not None:
                break
            pending[pool.submit(one, path)] = path
            if len(pending) >= concurrency * 2:
                report.halted = _drain(pending, outcome) or report.halted
        while pending:
            report.halted = _drain(pending, outcome) or report.halted
    try:
        submitter.flush()  # every outstanding event's outcome is heard here
    except DeliveryError as exc:  # each refused bill is in report.failed by its callback; the rest timed out
        for name in sorted(unconfirmed):
            outcome(Path(name), "failed", f"not confirmed by the broker: {exc}")
    report.seconds = time.monotonic() - started
    return report


def _drain(pending: dict[Future[None], Path], outcome: Callable[[Path, str, str | None], None]) -> str | None:
    """Settle what has finished; a reason to stop when every later file would fail the same
    way (the object store is full), else None."""
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    halt = None
    for future in done:
        path = pending.pop(future)
        try:
            future.result()
        except (BillstreamError, OSError) as exc:
            outcome(path, "failed", f"{exc.__class__.__name__}: {exc}")
            if isinstance(exc, StorageFull):
                halt = str(exc)
    return halt
