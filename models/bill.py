"""A bill read page by page, as one answer: lines with their page, the text, key fields.

A bill's header is on its first page and its total on its last: the seller, address and
date come from the first page that has them, the total from the last; a field's line
indices count over the whole bill's lines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.engine.predictor import PageResult


@dataclass(frozen=True)
class BillReading:
    lines: list[dict[str, Any]]
    text: str
    key_fields: list[dict[str, Any]]
    rotations: list[int]
    timings_ms: dict[str, float]
    warnings: list[str]
    text_source: str  # ocr, pdf-text (every page's own text) or mixed (some pages each way)


def merge_pages(pages: list[PageResult]) -> BillReading:
    lines: list[dict[str, Any]] = []
    best: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    warnings: list[str] = []
    for number, page in enumerate(pages):
        offset = len(lines)
        lines += [{"text": line.text, "confidence": float(line.confidence), "box": line.box(), "page": number}
                  for line in page.lines]
        for name, found in page.fields.items():
            detail = {"name": name} | found.to_dict()
            detail["lines"] = [offset + i for i in found.lines]
            if name not in best or name == "total":
                best[name] = detail
        for stage, ms in page.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
        warnings += [f"page {number + 1}: {w}" if len(pages) > 1 else w for w in page.warnings]
    rotations = [page.rotation for page in pages] if any(page.rotation for page in pages) else []
    sources = {page.source for page in pages}
    return BillReading(lines, " ".join(page.text for page in pages if page.text), list(best.values()), rotations,
                       timings, warnings, sources.pop() if len(sources) == 1 else "mixed")
