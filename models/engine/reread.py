"""Reading doubtful lines again, stretched wider, and keeping the most confident reading.

On receipts of vendors the recognizer never saw, dense print leaves too few CTC steps per
character (~3 at 32 px high) and the CRNN drops or merges characters; the same crop
stretched 1.3-1.45x often reads right. Stretching every line costs accuracy on familiar
print, so only lines below a confidence are read again (a threshold per decoder). Chosen on
receipts held out of training and out of the validation fold (the manifest's ``reread``
entry; how: ``reread_choice``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from models.manifest import decoder_entry

Reading = tuple[str, float]


@dataclass(frozen=True)
class RereadConfig:
    below: float = 0.0  # lines read with less confidence than this are read again; 0: never
    stretch: tuple[float, ...] = field(default_factory=tuple)  # width factors of the extra readings

    @classmethod
    def from_dict(cls, entry: dict[str, Any] | None, decoder: str = "beam") -> RereadConfig:
        """The manifest's entry for ``decoder`` (:func:`models.manifest.decoder_entry`)."""
        entry = decoder_entry(entry, decoder)
        return cls(float(entry.get("below", 0.0)), tuple(float(f) for f in entry.get("stretch", ())))

    @property
    def active(self) -> bool:
        return self.below > 0 and bool(self.stretch)


def stretch_width(line: np.ndarray, factor: float, max_width: int) -> np.ndarray:
    width = int(np.clip(round(line.shape[1] * factor), 8, max_width))
    return cv2.resize(line, (width, line.shape[0]), interpolation=cv2.INTER_CUBIC)


def reread(lines: list[np.ndarray], readings: list[Reading], read: Callable[[list[np.ndarray]], list[Reading]],
           config: RereadConfig, max_width: int) -> list[Reading]:
    """``readings`` of ``lines`` with each doubtful one replaced by a more confident reading of
    a stretched copy, when one is more confident."""
    doubtful = [i for i, (_, confidence) in enumerate(readings) if confidence < config.below]
    if not config.active or not doubtful:
        return readings
    return most_confident(readings, [dict(zip(doubtful, read([stretch_width(lines[i], factor, max_width)
                                                              for i in doubtful])))
                                     for factor in config.stretch])


def most_confident(readings: list[Reading], alternatives: list[dict[int, Reading]]) -> list[Reading]:
    """Each line's reading, or an alternative reading of it (by line index) that is more confident."""
    best = list(readings)
    for alternative in alternatives:
        for i, candidate in alternative.items():
            if candidate[1] > best[i][1]:
                best[i] = candidate
    return best
