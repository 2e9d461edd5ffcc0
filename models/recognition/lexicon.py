"""A word check after the beam: a word the recognizer read outside the lexicon is replaced by
a lexicon word one look-alike character away (``HEAITH`` -> ``HEALTH``), or split into two
(``STATIONERYSHOP`` -> ``STATIONERY SHOP``), where the network itself finds the new line
almost as likely as its own reading.

The character LM pulls towards common spellings as the beam runs; this check looks at whole
words instead, after it, and the network's CTC likelihood has the last word, so a name the
network is sure of (``MENTAI``, not ``MENTAL``) stays as read.
"""
from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.recognition.charset import Charset

# characters a CRNN confuses on receipt print; a substitution stays inside one group
LOOKALIKE_GROUPS = ("IL1TJ!|", "O0UDQCG", "GB6C", "S58", "Z2", "EF", "RP", "MN", "VY", "HN", "A4", "B8", "KX")
MIN_LETTERS = 4  # shorter words are too often codes and abbreviations
MIN_SPLIT_PART = 2  # a split leaves words of at least this many letters, one of them MIN_LETTERS
_TOKEN = re.compile(r"^([^A-Za-z0-9]*)(.*?)([^A-Za-z0-9]*)$")


def _lookalikes() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in LOOKALIKE_GROUPS:
        for ch in group:
            table.setdefault(ch, set()).update(c for c in group if c != ch)
    return {ch: frozenset(others) for ch, others in table.items()}


LOOKALIKES = _lookalikes()


class Lexicon:
    """Upper-case words, one per line in a gzip text file."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(w.upper() for w in words if w)

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            return cls(line.strip() for line in handle)

    def save(self, path: Path) -> None:
        """Sorted, with no name or time in the gzip header: the same words give the same bytes."""
        with open(path, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as handle:
            handle.write(("\n".join(sorted(self.words)) + "\n").encode("ascii"))

    def __len__(self) -> int:
        return len(self.words)

    def alternatives(self, word: str) -> list[str]:
        """Lexicon spellings for an out-of-lexicon ``word`` (letters only), in its case."""
        upper = word.upper()
        if len(upper) < MIN_LETTERS or not upper.isalpha() or upper in self.words:
            return []
        found = [upper[:i] + alt + upper[i + 1:] for i, ch in enumerate(upper) for alt in sorted(LOOKALIKES.get(ch, ()))
                 if alt.isalpha() and upper[:i] + alt + upper[i + 1:] in self.words]
        found += [f"{upper[:k]} {upper[k:]}" for k in range(MIN_SPLIT_PART, len(upper) - MIN_SPLIT_PART + 1)
                  if max(k, len(upper) - k) >= MIN_LETTERS and upper[:k] in self.words and upper[k:] in self.words]
        return [_in_case_of(word, w) for w in found]


def _in_case_of(word: str, replacement: str) -> str:
    if word.isupper():
        return replacement
    if word.islower():
        return replacement.lower()
    return replacement.title() if word.istitle() else replacement


def ctc_log_likelihood(log_probs: np.ndarray, labels: list[int], blank: int = 0) -> float:
    """log P(labels | log_probs) under CTC: the forward algorithm over (T, C) log-probabilities."""
    log_probs = log_probs.astype(np.float64)
    steps = log_probs.shape[0]
    if not labels:
        return float(log_probs[:, blank].sum())
    extended = np.full(2 * len(labels) + 1, blank)
    extended[1::2] = labels
    size = len(extended)
    # a label may skip the blank before it unless it repeats the label two places back
    skip = np.zeros(size, dtype=bool)
    skip[2:] = (extended[2:] != blank) & (extended[2:] != extended[:-2])
    alpha = np.full(size, -np.inf)
    alpha[0] = log_probs[0, blank]
    alpha[1] = log_probs[0, extended[1]]
    for t in range(1, steps):
        stay = alpha
        step = np.concatenate(([-np.inf], alpha[:-1]))
        jump = np.where(skip, np.concatenate(([-np.inf, -np.inf], alpha[:-2])), -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, step), jump) + log_probs[t, extended]
    return float(np.logaddexp(alpha[-1], alpha[-2]))


@dataclass(frozen=True)
class WordCheck:
    lexicon: Lexicon
    charset: Charset
    margin: float = 5.0  # nats the line's likelihood may fall by for a lexicon word

    def correct(self, text: str, log_probs: np.ndarray) -> str:
        """``text`` (the beam's reading of ``log_probs``, (T, C)) with each out-of-lexicon word
        replaced by its most likely lexicon alternative, if any keeps the line within the margin
        of the reading's own likelihood (all the line's replacements together)."""
        tokens = text.split(" ")
        floor: float | None = None
        for j, token in enumerate(tokens):
            match = _TOKEN.match(token)
            assert match is not None  # the pattern matches any string
            before, core, after = match.groups()
            options = self.lexicon.alternatives(core)
            if not options:
                continue
            if floor is None:
                floor = self._likelihood(text, log_probs) - self.margin
            best, best_score = None, floor
            for option in options:
                candidate = " ".join(tokens[:j] + [before + option + after] + tokens[j + 1:])
                score = self._likelihood(candidate, log_probs)
                if score >= best_score:
                    best, best_score = option, score
            if best is not None:
                tokens[j] = before + best + after
        return " ".join(tokens)

    def _likelihood(self, text: str, log_probs: np.ndarray) -> float:
        return ctc_log_likelihood(log_probs, self.charset.encode(text), self.charset.blank)
