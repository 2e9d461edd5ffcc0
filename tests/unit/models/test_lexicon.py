"""The beam's word check: lexicon spellings, the CTC likelihood that judges them, and the
shipped lexicon as the engine loads it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.engine.predictor import EngineOptions, OcrEngine
from models.manifest import WeightsError, model_version, read_manifest
from models.recognition.charset import Charset
from models.recognition.lexicon import Lexicon, WordCheck, ctc_log_likelihood
from models.spec import load_word_check
from models.training.tune_word_check import best_margin, margin_rows
from models.weights_io import WEIGHTS_DIR

CHARSET = Charset()


@pytest.mark.parametrize(("steps", "labels"), [(20, [5, 5, 7]), (40, [3, 9, 9, 9, 4, 1, 1, 2]), (6, [4, 4, 4]), (9, [])])
def test_the_ctc_likelihood_is_torchs(steps: int, labels: list[int]) -> None:
    log_probs = torch.log_softmax(torch.from_numpy(np.random.default_rng(steps).normal(size=(steps, 1, 12))), -1)
    expected = -torch.nn.functional.ctc_loss(log_probs, torch.tensor([labels or [1]]), torch.tensor([steps]),
                                             torch.tensor([len(labels)]), blank=0, reduction="sum").item()
    assert ctc_log_likelihood(log_probs[:, 0].numpy(), labels) == pytest.approx(expected, abs=1e-6)


def test_an_out_of_lexicon_word_gets_look_alike_spellings_and_splits_in_its_own_case() -> None:
    lexicon = Lexicon(["HEALTH", "STATIONERY", "SHOP", "MALAYSIA", "TOTAL"])
    assert lexicon.alternatives("HEAITH") == ["HEALTH"]
    assert lexicon.alternatives("Heaith") == ["Health"] and lexicon.alternatives("heaith") == ["health"]
    assert lexicon.alternatives("STATIONERYSHOP") == ["STATIONERY SHOP"]
    assert lexicon.alternatives("MALAYSLA") == ["MALAYSIA"]
    assert lexicon.alternatives("TOTAL") == []  # in the lexicon
    assert lexicon.alternatives("HEAXTH") == []  # X looks like K only
    assert lexicon.alternatives("TOTA1") == [] and lexicon.alternatives("SH0P") == []  # digits, or too short


def test_a_saved_lexicon_loads_back_and_the_same_words_give_the_same_bytes(tmp_path: Path) -> None:
    Lexicon(["shop", "HEALTH"]).save(tmp_path / "a.txt.gz")
    Lexicon(["HEALTH", "SHOP", "Shop"]).save(tmp_path / "b.txt.gz")
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
    assert Lexicon.load(tmp_path / "a.txt.gz").words == {"HEALTH", "SHOP"}


def _line(text: str, doubts: dict[int, tuple[str, float]]) -> np.ndarray:
    """(T, C) log-probabilities reading ``text`` one character per step, blanks between; at
    character ``i`` of ``doubts``, ``(other, p)`` gives the other character probability p."""
    rows = []
    for i, ch in enumerate(text):
        row = np.full(len(CHARSET), 1e-6)
        other, p = doubts.get(i, (ch, 0.0))
        row[CHARSET.encode(ch)[0]] = 1.0 - p
        row[CHARSET.encode(other)[0]] += p
        rows += [row / row.sum(), np.eye(len(CHARSET))[CHARSET.blank] * (1 - 1e-4) + 1e-4 / len(CHARSET)]
    return np.log(np.array(rows))


def test_a_doubtful_character_is_corrected_to_the_lexicon_and_a_sure_one_is_not() -> None:
    check = WordCheck(Lexicon(["HEALTH", "BEAUTY", "AND"]), CHARSET, margin=5.0)
    assert check.correct("GUARDIAN HEAITH AND BEAUTY", _line("GUARDIAN HEAITH AND BEAUTY", {12: ("L", 0.3)})) \
        == "GUARDIAN HEALTH AND BEAUTY"
    assert check.correct("GUARDIAN HEAITH AND BEAUTY", _line("GUARDIAN HEAITH AND BEAUTY", {})) \
        == "GUARDIAN HEAITH AND BEAUTY"  # the network is sure of its I: the spelling is the print's


def test_the_margin_bounds_all_of_a_lines_replacements_together() -> None:
    text = "HEAITH HEAITH"
    log_probs = _line(text, {3: ("L", 0.05), 10: ("L", 0.05)})  # each L costs log(0.95/0.05) ≈ 2.9 nats
    assert WordCheck(Lexicon(["HEALTH"]), CHARSET, margin=5.0).correct(text, log_probs) == "HEALTH HEAITH"
    assert WordCheck(Lexicon(["HEALTH"]), CHARSET, margin=6.5).correct(text, log_probs) == "HEALTH HEALTH"


def test_the_engine_checks_words_only_with_the_beam_and_says_so_in_its_version() -> None:
    checked = OcrEngine.load(options=EngineOptions(backend="onnx-int8"))
    unchecked = OcrEngine.load(options=EngineOptions(backend="onnx-int8", word_check=False))
    greedy = OcrEngine.load(options=EngineOptions(backend="onnx-int8", decoder="greedy"))
    assert checked.word_check is not None and len(checked.word_check.lexicon) > 50_000
    assert unchecked.word_check is None and unchecked.version == checked.version + ".nowords"
    assert greedy.word_check is None and not greedy.version.endswith(".nowords")


def test_the_lexicon_is_part_of_the_model_version_and_checked_at_load(tmp_path: Path) -> None:
    shutil.copytree(WEIGHTS_DIR, tmp_path / "weights")
    manifest_path = tmp_path / "weights" / "manifest.json"
    manifest = read_manifest(manifest_path)
    other = json.loads(json.dumps(manifest))
    other["language_model"]["lexicon"]["margin"] = 3.0
    assert model_version(other) != model_version(manifest)
    lexicon_path = tmp_path / "weights" / manifest["language_model"]["lexicon"]["file"]
    Lexicon(["REPLACED"]).save(lexicon_path)
    with pytest.raises(WeightsError, match="does not match the sha256"):
        load_word_check(manifest, CHARSET, tmp_path / "weights")
    lexicon_path.unlink()
    with pytest.raises(WeightsError, match="is missing"):
        load_word_check(manifest, CHARSET, tmp_path / "weights")


def test_the_margin_chosen_spoils_no_line_reads_most_exactly_and_a_tie_goes_to_the_smaller() -> None:
    truths = ["HEALTH SHOP", "MIZU MENTAI", "TOTAL"]
    readings = ["HEAITH SHOP", "MIZU MENTAI", "TOTAL"]
    checked = {3.0: readings, 5.0: ["HEALTH SHOP", "MIZU MENTAI", "TOTAL"], 7.0: ["HEALTH SHOP", "MIZU MENTAL", "TOTAL"],
               9.0: ["HEALTH SHOP", "MIZU MENTAI", "TOTAL"], 11.0: ["HEALTH SHOP", "MIZU MENTAI", "TOTAL"]}
    rows = margin_rows(readings, checked, truths)
    assert [(r["margin"], r["made_right"], r["spoiled"]) for r in rows] == [(0.0, 0, 0), (3.0, 0, 0), (5.0, 1, 0),
                                                                          (7.0, 1, 1), (9.0, 1, 0), (11.0, 1, 0)]
    assert rows[2]["line_exact_ci"] == 1.0 and rows[3]["line_exact_ci"] == pytest.approx(2 / 3)
    assert best_margin(rows) == 5.0  # as exact as 9 and 11, and smaller
    rows[1]["line_exact_ci"] = 1.0  # had 3 read as many, it would win the tie
    assert best_margin(rows) == 3.0
    rows[1]["spoiled"] = 1  # but not had it spoiled a line
    assert best_margin(rows) == 5.0
