"""CTC decoding in numpy: testable without a model."""
from __future__ import annotations

import numpy as np

from models.recognition.charset import Charset


def greedy_decode(log_probs: np.ndarray, charset: Charset, lengths: np.ndarray | None = None
                  ) -> list[tuple[str, float]]:
    """Best path per item of a (T, B, C) array: collapse repeats, drop blanks.

    The confidence is the mean probability of the kept characters' steps (1.0 for an empty
    line whose every step is blank with certainty), so one doubtful character lowers it.
    """
    if log_probs.ndim != 3:
        raise ValueError(f"expected (T, B, C) log-probabilities, got shape {log_probs.shape}")
    steps, batch, _ = log_probs.shape
    best = log_probs.argmax(-1)
    best_p = np.exp(log_probs.max(-1))
    out: list[tuple[str, float]] = []
    for b in range(batch):
        length = steps if lengths is None else int(lengths[b])
        path = best[:length, b]
        keep = np.ones(length, dtype=bool)
        keep[1:] = path[1:] != path[:-1]
        keep &= path != charset.blank
        text = charset.decode(path[keep].tolist())
        probs = best_p[:length, b][keep]
        confidence = float(probs.mean()) if probs.size else float(best_p[:length, b].mean()) if length else 0.0
        out.append((text, confidence))
    return out
