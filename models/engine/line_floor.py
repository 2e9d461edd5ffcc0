"""The confidence below which a recognised line is dropped as not text.

The detector also finds marks that are not print: a logo's edge, a stamp, a punched hole,
a tear line or a barcode's bars. The recognizer reads them as a lone ``*``, ``A`` or ``:``,
or as ``WWWWINWWWW``, mostly with little confidence; each is a spurious word and a run of
spurious characters on the page. A line read with less confidence than the floor is left
out. The floor is chosen per decoder (the beam's confidences and greedy decoding's are on
different scales) on receipts in neither training nor the validation fold
(``models.training.tune_line_floor``), and stored in the manifest's ``line_floor`` entry.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from models.manifest import decoder_entry

Line = TypeVar("Line")


def floor_for(entry: dict[str, Any] | None, decoder: str) -> float:
    """The manifest entry's floor for ``decoder`` (:func:`models.manifest.decoder_entry`); 0: none."""
    return float(decoder_entry(entry, decoder).get("below", 0.0))


def readable(lines: Iterable[Line], readings: Iterable[tuple[str, float]], floor: float
             ) -> Iterator[tuple[Line, str, float]]:
    """Each line with its reading, less those read empty or below ``floor``."""
    for line, (text, confidence) in zip(lines, readings):
        if text.strip() and confidence >= floor:
            yield line, text, confidence
