"""The character LM and the CTC beam decoder that uses it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.manifest import WEIGHTS_DIR, WeightsError, read_manifest
from models.recognition.char_lm import END, CharNgramLM
from models.recognition.charset import Charset
from models.recognition.ctc import BeamConfig, beam_decode, greedy_decode
from models.spec import load_language_model

CHARSET = Charset()
RECEIPT_TEXT = ["TOTAL 12.50", "SUB TOTAL 9.90", "TOTAL RM 3.00", "CASH 20.00", "CHANGE 7.50"] * 20


def frames(spec: list[dict[str, float]]) -> np.ndarray:
    """(T, 1, C) log-probs: each step a {char: prob} dict, the rest of the mass on blank."""
    out = np.full((len(spec), 1, len(CHARSET)), 1e-6)
    for t, step in enumerate(spec):
        for ch, p in step.items():
            out[t, 0, CHARSET.encode(ch)[0]] = p
        out[t, 0, CHARSET.blank] = max(1e-6, 1 - sum(step.values()))
    out /= out.sum(-1, keepdims=True)
    return np.log(out).astype(np.float32)


def spell(text: str) -> list[dict[str, float]]:
    steps: list[dict[str, float]] = []
    for ch in text:
        steps += [{ch: 0.97}, {}]
    return steps


def test_lm_is_a_distribution_and_prefers_seen_text() -> None:
    lm = CharNgramLM.build(RECEIPT_TEXT, order=4, alphabet_size=len(CHARSET) - 1)
    history = lm.context("TOT")
    symbols = [CHARSET.decode([i]) for i in range(len(CHARSET)) if i != CHARSET.blank] + [END]
    assert sum(np.exp(lm.log_prob(history, s)) for s in symbols) == pytest.approx(1.0, abs=1e-9)
    assert lm.log_prob(history, "A") > lm.log_prob(history, "0") > -np.inf


def test_lm_round_trips_through_its_file_byte_for_byte(tmp_path: Path) -> None:
    lm = CharNgramLM.build(RECEIPT_TEXT, order=5, alphabet_size=95)
    lm.save(tmp_path / "a.json.gz")
    again = CharNgramLM.load(tmp_path / "a.json.gz")
    again.save(tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert again.log_prob(again.context("CAS"), "H") == lm.log_prob(lm.context("CAS"), "H")


def test_beam_agrees_with_greedy_on_clear_input_and_the_lm_breaks_a_tie() -> None:
    lm = CharNgramLM.build(RECEIPT_TEXT, order=5, alphabet_size=len(CHARSET) - 1)
    clear = frames(spell("CASH 20.00"))
    assert beam_decode(clear, CHARSET, lm)[0][0] == greedy_decode(clear, CHARSET)[0][0] == "CASH 20.00"
    # the second letter is 0 by a hair: greedy reads T0TAL, the receipt prior reads TOTAL
    doubtful = spell("T") + [{"0": 0.50, "O": 0.47}, {}] + spell("TAL")
    assert greedy_decode(frames(doubtful), CHARSET)[0][0] == "T0TAL"
    text, confidence = beam_decode(frames(doubtful), CHARSET, lm)[0]
    assert text == "TOTAL" and 0.3 < confidence < 1.0
    # with no weight on the prior the beam follows the pixels
    assert beam_decode(frames(doubtful), CHARSET, lm, BeamConfig(alpha=0.0, beta=0.0))[0][0] == "T0TAL"


def test_beam_keeps_doubled_letters_apart_only_across_a_blank() -> None:
    lm = CharNgramLM.build(["BILL", "BIL"], order=3, alphabet_size=len(CHARSET) - 1)
    held = [{"B": 0.98}, {}, {"I": 0.98}, {}, {"L": 0.98}, {"L": 0.98}]  # one L held two steps
    apart = [{"B": 0.98}, {}, {"I": 0.98}, {}, {"L": 0.98}, {}, {"L": 0.98}]
    config = BeamConfig(alpha=0.0, beta=0.0)
    assert beam_decode(frames(held), CHARSET, lm, config)[0][0] == "BIL"
    assert beam_decode(frames(apart), CHARSET, lm, config)[0][0] == "BILL"


def test_a_replaced_language_model_file_is_refused(tmp_path: Path) -> None:
    manifest = read_manifest(WEIGHTS_DIR / "manifest.json")
    if "language_model" not in manifest:
        pytest.fail("the shipped manifest has no language_model entry")
    shutil.copy(WEIGHTS_DIR / manifest["language_model"]["file"], tmp_path / manifest["language_model"]["file"])
    assert load_language_model(manifest, tmp_path) is not None
    CharNgramLM.build(["SOMETHING ELSE"], order=3, alphabet_size=95).save(tmp_path / manifest["language_model"]["file"])
    with pytest.raises(WeightsError, match="sha256"):
        load_language_model(json.loads(json.dumps(manifest)), tmp_path)
