"""Events + bytes → results, with no Kafka in sight: the worker's unit of work.

A batch of BillSubmitted events is fetched from storage concurrently, decoded and
validated (limits from settings), the decodable pages go through the engine together, and
every event gets exactly one result — failures included, each with its code.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from billstream_core.errors import BillstreamError, ObjectNotFound, StorageError, StorageUnavailable
from billstream_core.settings import LimitSettings
from inference_worker import results
from models.bill import merge_pages
from models.documents import DecodedDocument, decode_document
from models.intake import ImageRejected


class Engine(Protocol):
    name: str
    version: str

    def read_pages(self, pages: list[np.ndarray], text_layers: list[Any] | None = None) -> list[Any]: ...


class ImageSource(Protocol):
    def get(self, key: str, *, max_bytes: int | None = None) -> bytes: ...


@dataclass(frozen=True)
class EngineBatch:
    """One engine call's results, with its size and wall time: diagnostics for the worker's
    record headers, not part of any result's timings."""
    results: list[dict[str, Any]]
    pages: int
    ms: float


@dataclass
class PreparedBill:
    event: dict[str, Any]
    document: DecodedDocument | None = None
    error: tuple[str, str] | None = None
    fetch_ms: float = 0.0
    decode_ms: float = 0.0


class BillHandler:
    def __init__(self, engine: Engine, source: ImageSource, limits: LimitSettings, *, fetch_concurrency: int = 8,
                 storage_patience_s: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.engine = engine
        self.source = source
        self.limits = limits
        self.storage_patience_s = storage_patience_s
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=fetch_concurrency, thread_name_prefix="fetch")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, event: dict[str, Any]) -> PreparedBill:
        prepared = PreparedBill(event)
        t0 = time.perf_counter()
        try:
            data = self._fetch(event["image"]["key"])
        except ObjectNotFound as exc:
            prepared.error = ("OBJECT_NOT_FOUND", str(exc))
        except StorageError as exc:
            prepared.error = (exc.code if exc.code in results.ERROR_CODES else "STORAGE_UNAVAILABLE", str(exc))
        t1 = time.perf_counter()
        prepared.fetch_ms = (t1 - t0) * 1000
        if prepared.error is not None:
            return prepared
        try:
            prepared.document = decode_document(data, self.limits)
        except ImageRejected as exc:
            prepared.error = (exc.code, str(exc))
        prepared.decode_ms = (time.perf_counter() - t1) * 1000
        return prepared

    def _fetch(self, key: str) -> bytes:
        """The image; while storage is unavailable, retried with backoff (0.5 s doubling to
        5 s) for up to ``storage_patience_s``: an outage shorter than that delays the order
        instead of failing it."""
        deadline = time.monotonic() + self.storage_patience_s
        delay = 0.5
        while True:
            try:
                return self.source.get(key, max_bytes=self.limits.max_image_bytes)
            except StorageUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 5.0)

    def prepare(self, events: list[dict[str, Any]]) -> list[PreparedBill]:
        """Fetch and decode (I/O and a little CPU): the part the worker overlaps with the engine."""
        return list(self._pool.map(self._prepare, events))

    def recognize(self, prepared: list[PreparedBill]) -> EngineBatch:
        """Run the engine over the decodable pages; one result per prepared event, in order."""
        started = time.perf_counter()
        ready = [p for p in prepared if p.document is not None]
        pages: list[Any] = []
        if ready:
            try:
                documents = [p.document for p in ready if p.document is not None]
                layers = [d.text_layer(i) for d in documents for i in range(len(d.pages))]
                grays = [page.gray for d in documents for page in d.pages]
                pages = self.engine.read_pages(grays, layers)
            except BillstreamError as exc:
                for p in ready:
                    p.error, p.document = (exc.code if exc.code in results.ERROR_CODES else "INTERNAL", str(exc)), None
            except (RuntimeError, ValueError, MemoryError) as exc:
                for p in ready:
                    p.error, p.document = ("INTERNAL", f"engine failed: {exc.__class__.__name__}: {exc}"), None
        by_id: dict[int, list[Any]] = {}
        cursor = 0
        for p in ready:
            if p.document is not None and pages:
                count = len(p.document.pages)
                by_id[id(p)] = pages[cursor:cursor + count]
                cursor += count
        batch_ms = (time.perf_counter() - started) * 1000
        common: dict[str, Any] = {"model_name": self.engine.name, "model_version": self.engine.version}
        out = []
        for p in prepared:
            event = p.event
            if p.error is not None or id(p) not in by_id or p.document is None:
                code, message = p.error or ("INTERNAL", "no engine output")
                out.append(results.failed(event["order_number"], code, message, sha256=event["image"]["sha256"],
                                          timings_ms=stage_timings(p), submitted_at_ms=event.get("submitted_at_ms"),
                                          **common))
                continue
            bill = merge_pages(by_id[id(p)])
            out.append(results.recognized(
                event["order_number"], event["image"]["sha256"], bill.lines, bill.text,
                timings_ms=stage_timings(p, bill.timings_ms), key_fields=bill.key_fields,
                page_count=len(p.document.pages), page_rotations=bill.rotations, text_source=bill.text_source,
                warnings=p.document.warnings + bill.warnings, submitted_at_ms=event.get("submitted_at_ms"), **common))
        return EngineBatch(out, len(pages), batch_ms)


def stage_timings(bill: PreparedBill, engine_ms: dict[str, float] | None = None) -> dict[str, float]:
    """The stages the result schema names. fetch, decode, detect and fields are this bill's
    own; recognize is apportioned (its lines' share of the batch's recognition); total is the sum.
    A bill that failed carries the stages it reached."""
    stages = {"fetch_ms": bill.fetch_ms, "decode_ms": bill.decode_ms}
    if engine_ms is not None:
        stages["detect_ms"] = engine_ms.get("preprocess_ms", 0.0) + engine_ms.get("detect_ms", 0.0)
        stages["recognize_ms"] = engine_ms.get("recognize_ms", 0.0)
        stages["fields_ms"] = engine_ms.get("fields_ms", 0.0)
    stages["total_ms"] = sum(stages.values())
    return {name: round(ms, 2) for name, ms in stages.items()}
