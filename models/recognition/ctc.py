"""CTC decoding in numpy, greedy or beam search with a character LM: testable without a model."""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from models.recognition.char_lm import END, CharNgramLM
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


@dataclass(frozen=True)
class BeamConfig:
    """CTC prefix beam search with a character LM: score = log P_ctc + alpha·log P_lm + beta·length."""

    alpha: float = 0.3
    beta: float = 0.5
    width: int = 8
    prune: float = 1e-3  # characters below this probability at a step are not extended
    blank_skip: float = 0.999  # a step this sure of blank only carries the beams forward
    # a line whose every step is this sure is read greedily: an alternative costs the pixels
    # log(0.995/0.005) ≈ 5.3 nats per step, more than alpha·(largest LM gain) + beta can repay
    sure: float = 0.995


def beam_decode(log_probs: np.ndarray, charset: Charset, lm: CharNgramLM, config: BeamConfig = BeamConfig(),
                lengths: np.ndarray | None = None, *, compiled: bool = True) -> list[tuple[str, float]]:
    """Like :func:`greedy_decode`, with an LM prior; the confidence is the CTC probability of the
    chosen text per character (geometric mean), so it stays comparable across line lengths.
    ``compiled``: the numba search (:mod:`models.recognition.compiled_beam`), the same readings
    at a fraction of the time; False runs the Python reference below."""
    if log_probs.ndim != 3:
        raise ValueError(f"expected (T, B, C) log-probabilities, got shape {log_probs.shape}")
    steps, batch, _ = log_probs.shape
    probs = np.exp(log_probs.astype(np.float64))
    search = compiled_search() if compiled else None
    tables = search.tables_for(lm, charset.chars) if search is not None else None
    chars = {i: charset.decode([i]) for i in range(len(charset)) if i != charset.blank} if search is None else {}
    out: list[tuple[str, float]] = []
    for b in range(batch):
        line = probs[: steps if lengths is None else int(lengths[b]), b]
        if line.size and (line.max(-1) >= config.sure).all():
            out += greedy_decode(log_probs[: line.shape[0], b:b + 1], charset)
        elif search is not None:
            indices, confidence = search.beam_one(line, charset.blank, tables, config.alpha, config.beta,
                                                  config.width, config.prune, config.blank_skip)
            out.append((charset.decode(indices), float(confidence)))
        else:
            out.append(_beam_one(line, charset.blank, chars, lm, config))
    return out


@functools.cache
def compiled_search() -> ModuleType | None:
    """The compiled search's module, loaded at the first beam (greedy decoding, as in training,
    needs no numba); None, with a warning, where numba is missing: the Python search then
    reads the same text, slower. numba is a dependency; a bare GPU image may lack it."""
    try:
        from models.recognition import compiled_beam
    except ImportError as exc:
        warnings.warn(f"the compiled beam search is unavailable ({exc}); pip install numba. "
                      "The beam search runs in Python: the same readings, about 3x the time", stacklevel=3)
        return None
    return compiled_beam


def _beam_one(probs: np.ndarray, blank: int, chars: dict[int, str], lm: CharNgramLM,
              config: BeamConfig) -> tuple[str, float]:
    # prefix → [P(ends in blank), P(ends in a character), LM log-prob]; rescaled per step, log scale kept
    beams: dict[str, list[float]] = {"": [1.0, 0.0, 0.0]}
    log_scale = 0.0

    def score(prefix: str, entry: list[float]) -> float:
        total = entry[0] + entry[1]
        return (math.log(total) if total > 0 else -1e30) + config.alpha * entry[2] + config.beta * len(prefix)

    for step in probs:
        p_blank = float(step[blank])
        if p_blank >= config.blank_skip:
            beams = {k: [(v[0] + v[1]) * p_blank, 0.0, v[2]] for k, v in beams.items()}
        else:
            candidates = [int(c) for c in np.flatnonzero(step > config.prune) if c != blank]
            following: dict[str, list[float]] = {}
            for prefix, (pb, pnb, lm_lp) in beams.items():
                entry = following.setdefault(prefix, [0.0, 0.0, lm_lp])
                entry[0] += (pb + pnb) * p_blank
                history = lm.context(prefix)
                for c in candidates:
                    ch, p = chars[c], float(step[c])
                    if prefix and prefix[-1] == ch:
                        entry[1] += pnb * p  # the same character continued
                        extend_with = pb * p  # a new character after a blank
                    else:
                        extend_with = (pb + pnb) * p
                    extended = prefix + ch
                    target = following.get(extended)
                    if target is None:
                        target = following[extended] = [0.0, 0.0, lm_lp + lm.log_prob(history, ch)]
                    target[1] += extend_with
            kept = sorted(following.items(), key=lambda kv: score(*kv), reverse=True)[: config.width]
            beams = dict(kept)
        top = max(v[0] + v[1] for v in beams.values())
        if top <= 0:
            break
        log_scale += math.log(top)
        for v in beams.values():
            v[0] /= top
            v[1] /= top

    def final(prefix: str) -> float:
        entry = beams[prefix]
        return score(prefix, entry) + config.alpha * lm.log_prob(lm.context(prefix), END)

    best = max(beams, key=final)
    total = beams[best][0] + beams[best][1]
    log_p = (math.log(total) if total > 0 else -1e30) + log_scale
    return best, float(math.exp(log_p / max(1, len(best))))
