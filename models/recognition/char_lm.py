"""A character n-gram language model of receipt text, for the CTC beam decoder.

Receipts repeat a small vocabulary (TOTAL, CASH, SDN BHD, GST…) in fonts where N/M, F/T
and I/L blur together; a prior over character sequences breaks such ties. Witten-Bell
interpolation: a history seen with few distinct followers trusts its own counts, one seen
with many leans on the shorter history. Stored as gzip'd JSON counts (no pickle), built
from training transcripts only (``python -m models.training.build_lm``).
"""
from __future__ import annotations

import gzip
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

START, END = "\x02", "\x03"


class CharNgramLM:
    def __init__(self, order: int, counts: dict[str, dict[str, int]], alphabet_size: int) -> None:
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self.counts = counts
        self.alphabet_size = alphabet_size
        self._totals = {h: (sum(c.values()), len(c)) for h, c in counts.items()}
        self.log_prob = lru_cache(maxsize=262_144)(self._log_prob)

    @classmethod
    def build(cls, texts: Iterable[str], order: int, alphabet_size: int) -> CharNgramLM:
        counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            padded = START * (order - 1) + text + END
            for i in range(order - 1, len(padded)):
                for k in range(order):
                    counts[padded[i - k:i]][padded[i]] += 1
        return cls(order, {h: dict(c) for h, c in counts.items()}, alphabet_size)

    def context(self, prefix: str) -> str:
        """The history the model conditions on after ``prefix`` (start padding included)."""
        return (START * (self.order - 1) + prefix)[-(self.order - 1):] if self.order > 1 else ""

    def _prob(self, history: str, char: str) -> float:
        if not history:
            seen = self.counts.get("", {})
            total = self._totals.get("", (0, 0))[0]
            return (seen.get(char, 0) + 1) / (total + self.alphabet_size + 1)  # add-one at the root
        lower = self._prob(history[1:], char)
        seen_after = self.counts.get(history)
        if not seen_after:
            return lower
        total, distinct = self._totals[history]
        return (seen_after.get(char, 0) + distinct * lower) / (total + distinct)

    def _log_prob(self, history: str, char: str) -> float:
        """log P(char | history); ``history`` as :meth:`context` gives it, ``char`` may be END."""
        return math.log(self._prob(history, char))

    # -- storage --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        payload = json.dumps({"format": 1, "order": self.order, "alphabet_size": self.alphabet_size,
                              "counts": self.counts}, sort_keys=True, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(payload, mtime=0))  # byte-identical for the same counts

    @classmethod
    def load(cls, path: Path) -> CharNgramLM:
        data = json.loads(gzip.decompress(path.read_bytes()))
        return cls(int(data["order"]), data["counts"], int(data["alphabet_size"]))
