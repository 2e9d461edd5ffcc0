"""Measure an OCR reader on receipts with ground truth, as docs/benchmarks.md defines the measures.

Any reader fits: it turns image bytes into (text, quad) lines and may read GT line crops.
The engine, RapidOCR and Tesseract are measured by this same code, side by side.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import numpy as np

from models.detection.postprocess import DetectedLine, reading_order
from models.intake import decode_image
from models.preprocess import crop_quad
from models.training.metrics import KeyFieldMetrics, LineAccuracy, PageMetrics
from models.training.receipts import Receipt


class Reader(Protocol):
    name: str

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]: ...

    def read_crops(self, crops: list[np.ndarray]) -> list[str]: ...


def ordered_text(lines: Iterable[tuple[str, np.ndarray]]) -> str:
    """Lines in reading order (rows by vertical centre, then left to right), space-joined."""
    items = list(lines)
    ordered = reading_order([DetectedLine(np.asarray(q, np.float32).reshape(4, 2), float(i)) for i, (_, q) in enumerate(items)])
    return " ".join(items[int(line.score)][0] for line in ordered)


def evaluate(reader: Reader, receipts: list[Receipt], *, crop_margin: float = 0.08, line_crops: bool = True,
             progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    pages, lines, fields = PageMetrics(), LineAccuracy(), KeyFieldMetrics()
    for n, receipt in enumerate(receipts, 1):
        data = receipt.image_path.read_bytes()
        started = time.perf_counter()
        found: dict[str, str] | None = None
        if isinstance(reader, FieldReader):  # the key fields come with the same reading
            predicted, found = reader.read_page_fields(data)
        else:
            predicted = reader.read_page(data)
        seconds = time.perf_counter() - started
        truth_fields = receipt.image_path.with_suffix(".json")
        if found is not None and truth_fields.exists():
            fields.add(found, {k: str(v or "") for k, v in json.loads(truth_fields.read_text()).items()})
        truth = [(line.text, line.quad) for line in receipt.lines]
        pages.add([t for t, _ in predicted], [t for t, _ in truth], ordered_text(predicted), ordered_text(truth), seconds)
        if line_crops:
            from billstream_core.settings import LimitSettings

            gray = decode_image(data, LimitSettings()).gray
            crops = [crop_quad(gray, line.quad, crop_margin) for line in receipt.lines]
            for text, line in zip(reader.read_crops(crops), receipt.lines):
                lines.add(text, line.text)
        if progress:
            progress(n, len(receipts))
    return pages.summary() | (lines.summary() if line_crops else {}) | (fields.summary() if fields.counts else {})


@runtime_checkable
class FieldReader(Protocol):
    """A reader that also finds the key fields (printed text by field name)."""

    def read_page_fields(self, data: bytes) -> tuple[list[tuple[str, np.ndarray]], dict[str, str]]: ...


class EngineReader:
    """The billstream engine behind the Reader protocol."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.name = f"billstream {engine.version} ({engine.options.backend}, {engine.options.decoder})"

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]:
        return self.read_page_fields(data)[0]

    def read_page_fields(self, data: bytes) -> tuple[list[tuple[str, np.ndarray]], dict[str, str]]:
        page = self.engine.read_image_bytes(data)
        return [(line.text, line.quad) for line in page.lines], {k: f.text for k, f in page.fields.items()}

    def read_crops(self, crops: list[np.ndarray]) -> list[str]:
        return [text for text, _ in self.engine.recognize(crops)]
