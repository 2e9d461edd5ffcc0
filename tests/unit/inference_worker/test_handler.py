"""The handler's decisions with an in-memory image source and engine: no Kafka, no MinIO."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from billstream_core.errors import ObjectNotFound, StorageUnavailable
from billstream_core.settings import LimitSettings
from inference_worker.handler import BillHandler
from models.engine.predictor import PageResult, RecognizedLine
from models.pdf_text import PageText
from tests.support.pdfs import joined_pdf, pages_pdf, text_pdf

QUAD = np.array([[0, 0], [10, 0], [10, 5], [0, 5]], np.float32)


class FakeEngine:
    name = "fake-ocr"
    version = "v-test"

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[int] = []

    def read_pages(self, pages: list[np.ndarray], text_layers: list[PageText | None] | None = None) -> list[PageResult]:
        self.calls.append(len(pages))
        if self.fail is not None:
            raise self.fail
        layers = text_layers or [None] * len(pages)
        return [PageResult([RecognizedLine(f"PAGE {page.shape[1]}", 0.9, QUAD)],
                           {"preprocess_ms": 1.0, "detect_ms": 2.0, "recognize_ms": 3.0}) if layer is None
                else PageResult([RecognizedLine(line.text, 1.0, line.quad) for line in layer.lines], {},
                                source="pdf-text") for page, layer in zip(pages, layers)]


class FakeSource:
    def __init__(self, objects: dict[str, bytes | Exception]) -> None:
        self.objects = objects

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        found = self.objects.get(key, ObjectNotFound(f"no object {key}"))
        if isinstance(found, Exception):
            raise found
        return found


def png(width: int) -> bytes:
    return cv2.imencode(".png", np.full((40, width), 255, np.uint8))[1].tobytes()


def event(order: str, key: str) -> dict[str, Any]:
    return {"order_number": order, "submitted_at_ms": 1, "image": {"key": key, "sha256": key * 4}}


def run(objects: dict[str, bytes | Exception], events: list[dict[str, Any]], engine: FakeEngine | None = None):
    handler = BillHandler(engine or FakeEngine(), FakeSource(objects), LimitSettings())
    try:
        return handler.recognize(handler.prepare(events))
    finally:
        handler.close()


def test_every_event_gets_one_result_in_order_with_its_code() -> None:
    objects: dict[str, bytes | Exception] = {"ok1": png(120), "gif": b"GIF89a" + bytes(64), "down": StorageUnavailable("gone"),
                                             "ok2": png(200)}
    events = [event("A-1", "ok1"), event("A-2", "missing"), event("A-3", "gif"), event("A-4", "down"), event("A-5", "ok2")]
    engine = FakeEngine()
    batch = run(objects, events, engine)
    assert [r["order_number"] for r in batch.results] == ["A-1", "A-2", "A-3", "A-4", "A-5"]
    assert [r["status"] for r in batch.results] == ["RECOGNIZED", "FAILED", "FAILED", "FAILED", "RECOGNIZED"]
    assert [r["error_code"] for r in batch.results] == [None, "OBJECT_NOT_FOUND", "UNSUPPORTED_FORMAT",
                                                        "STORAGE_UNAVAILABLE", None]
    assert engine.calls == [2] and batch.pages == 2  # only the decodable pages, in one engine call
    assert batch.results[0]["page_text"] == "PAGE 120" and batch.results[4]["page_text"] == "PAGE 200"


def test_timings_carry_exactly_the_schema_stages() -> None:
    batch = run({"ok": png(100), "bad": b"GIF89a" + bytes(64)}, [event("B-1", "ok"), event("B-2", "bad")])
    done, failed = batch.results
    assert set(done["timings_ms"]) == {"fetch_ms", "decode_ms", "detect_ms", "recognize_ms", "fields_ms", "total_ms"}
    assert done["timings_ms"]["detect_ms"] == 3.0  # preprocessing and detection of the page
    assert done["timings_ms"]["recognize_ms"] == 3.0
    stages = [v for k, v in done["timings_ms"].items() if k != "total_ms"]
    assert done["timings_ms"]["total_ms"] == pytest.approx(sum(stages), abs=0.02)
    assert set(failed["timings_ms"]) == {"fetch_ms", "decode_ms", "total_ms"}  # the stages it reached


def test_a_pdf_page_with_its_own_text_reaches_the_engine_as_text_and_the_result_says_so() -> None:
    text = text_pdf(["SHOP", "TOTAL 1.00"])
    objects: dict[str, bytes | Exception] = {"text": text, "image": png(90),
                                             "both": joined_pdf([text, pages_pdf([png(300)])])}
    batch = run(objects, [event("P-1", "text"), event("P-2", "image"), event("P-3", "both")])
    assert [r["text_source"] for r in batch.results] == ["pdf-text", "ocr", "mixed"]
    assert batch.results[0]["page_text"] == "SHOP TOTAL 1.00" and batch.results[2]["page_count"] == 2
    assert batch.results[2]["page_text"].startswith("SHOP TOTAL 1.00 PAGE ")


@pytest.mark.parametrize(("error", "code"), [(RuntimeError("CUDA out of memory"), "INTERNAL"),
                                             (StorageUnavailable("engine storage"), "STORAGE_UNAVAILABLE")])
def test_an_engine_failure_fails_each_page_of_the_batch_with_a_code(error: Exception, code: str) -> None:
    batch = run({"a": png(100), "b": png(110)}, [event("C-1", "a"), event("C-2", "b")], FakeEngine(fail=error))
    assert [(r["status"], r["error_code"]) for r in batch.results] == [("FAILED", code)] * 2
    assert all(r["model_version"] == "v-test" for r in batch.results)


class FlakySource(FakeSource):
    """Unavailable for the first ``outage`` calls, then serves."""

    def __init__(self, objects: dict[str, bytes | Exception], outage: int) -> None:
        super().__init__(objects)
        self.outage, self.calls = outage, 0

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        self.calls += 1
        if self.calls <= self.outage:
            raise StorageUnavailable("MinIO unavailable")
        return super().get(key, max_bytes=max_bytes)


def test_an_outage_shorter_than_the_patience_delays_the_order_with_growing_waits() -> None:
    waits: list[float] = []
    handler = BillHandler(FakeEngine(), FlakySource({"a": png(30)}, outage=4), LimitSettings(),
                          storage_patience_s=60, sleep=waits.append)
    try:
        (result,) = handler.recognize(handler.prepare([event("A", "a")])).results
    finally:
        handler.close()
    assert result["status"] == "RECOGNIZED"
    assert waits == [0.5, 1.0, 2.0, 4.0]


def test_an_outage_past_the_patience_fails_the_order_storage_unavailable() -> None:
    waits: list[float] = []
    source = FlakySource({"a": png(30)}, outage=1000)
    handler = BillHandler(FakeEngine(), source, LimitSettings(), storage_patience_s=0, sleep=waits.append)
    try:
        (result,) = handler.recognize(handler.prepare([event("A", "a")])).results
    finally:
        handler.close()
    assert (result["status"], result["error_code"]) == ("FAILED", "STORAGE_UNAVAILABLE")
    assert source.calls == 1 and waits == []
