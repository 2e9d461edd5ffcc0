"""The compiled beam search reads exactly what the Python reference reads."""
from __future__ import annotations

import numpy as np
import pytest

from models.recognition.char_lm import CharNgramLM
from models.recognition.charset import Charset
from models.recognition.ctc import BeamConfig, beam_decode
from models.spec import load_language_model, read_spec

CHARSET = Charset()
TEXTS = ["TOTAL 12.50", "SUB TOTAL 9.90", "TOTAL RM 3.00", "CASH 20.00", "CHANGE 7.50", "GST 6% 0.45",
         "NO. 31G&33G, JALAN SETIA", "SDN BHD (12345-X)", "THANK YOU PLEASE COME AGAIN"] * 5


def ctc_outputs(rng: np.random.Generator, lines: int, steps: int, classes: int) -> np.ndarray:
    """(T, B, C) log-probs shaped like a recognizer's: mostly sure blanks and characters, some
    steps torn between a few classes, a run of the same character now and then."""
    out = np.full((steps, lines, classes), 1e-7)
    for b in range(lines):
        for t in range(steps):
            kind = rng.random()
            if kind < 0.45:
                out[t, b, 0] = 1.0
            elif kind < 0.75:
                out[t, b, rng.integers(1, classes)] = 1.0
            elif kind < 0.85 and t:
                out[t, b] = out[t - 1, b]
            else:
                picks = rng.choice(classes, size=rng.integers(2, 5), replace=False)
                out[t, b, picks] = rng.dirichlet(np.ones(len(picks)))
    out /= out.sum(-1, keepdims=True)
    return np.log(out).astype(np.float32)


@pytest.mark.parametrize("order", [1, 2, 5])
def test_compiled_search_reads_exactly_what_the_reference_reads(order: int) -> None:
    lm = CharNgramLM.build(TEXTS, order=order, alphabet_size=len(CHARSET) - 1)
    rng = np.random.default_rng(order)
    log_probs = ctc_outputs(rng, lines=60, steps=40, classes=len(CHARSET))
    lengths = rng.integers(1, 41, size=60)
    for config in (BeamConfig(), BeamConfig(alpha=0.8, beta=1.5, width=3, prune=0.05), BeamConfig(width=1)):
        compiled = beam_decode(log_probs, CHARSET, lm, config, lengths=lengths)
        reference = beam_decode(log_probs, CHARSET, lm, config, lengths=lengths, compiled=False)
        assert compiled == reference  # the same text and the same confidence, to the last bit
    assert len({text for text, _ in compiled}) > 30  # the cases are not all alike


def test_compiled_search_agrees_with_the_reference_under_the_shipped_lm() -> None:
    """The shipped LM (order 6, 64,810 histories) over its charset, with the shipped decoder settings."""
    spec = read_spec()
    shipped = load_language_model(spec.manifest)
    assert shipped is not None
    lm, config = shipped
    log_probs = ctc_outputs(np.random.default_rng(7), lines=40, steps=60, classes=len(spec.charset))
    assert beam_decode(log_probs, spec.charset, lm, config) == \
        beam_decode(log_probs, spec.charset, lm, config, compiled=False)


def test_without_numba_the_beam_warns_and_reads_the_same_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from models import recognition
    from models.recognition import ctc

    lm = CharNgramLM.build(TEXTS, order=5, alphabet_size=len(CHARSET) - 1)
    log_probs = ctc_outputs(np.random.default_rng(3), lines=20, steps=30, classes=len(CHARSET))
    expected = beam_decode(log_probs, CHARSET, lm)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    monkeypatch.delitem(sys.modules, "models.recognition.compiled_beam")
    monkeypatch.delattr(recognition, "compiled_beam")
    ctc.compiled_search.cache_clear()
    try:
        with pytest.warns(UserWarning, match="pip install numba"):
            assert beam_decode(log_probs, CHARSET, lm) == expected
        assert ctc.compiled_search() is None
    finally:
        ctc.compiled_search.cache_clear()
