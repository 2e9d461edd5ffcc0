"""The recognizer trainer end to end on a tiny subset: exports checked weights, resumes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.networks import load_networks
from models.training import train_recognizer
from models.weights_io import WEIGHTS_DIR


def test_trainer_exports_weights_with_a_manifest_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "manifest.json").write_text((WEIGHTS_DIR / "manifest.json").read_text())
    for name in ("detector.npz", "char_lm.json.gz"):
        (weights / name).write_bytes((WEIGHTS_DIR / name).read_bytes())
    common = ["--epochs", "2", "--limit", "2", "--synthetic", "16", "--batch-size", "16", "--threads", "1", "--seed", "7",
              "--run-dir", str(tmp_path / "run"), "--weights-dir", str(weights)]
    assert train_recognizer.main([*common, "--max-minutes", "0"]) == 0  # stops after epoch 1, checkpointed
    first = json.loads((weights / "manifest.json").read_text())["recognizer"]
    assert first["training"]["epochs"] == 1 and "synthetic lines" in first["training"]["data"]
    assert 0.0 <= first["metrics"]["line_exact_ci"] <= 1.0
    load_networks(weights)  # the exported file matches its sha256 and the architecture

    assert train_recognizer.main(common) == 0  # the same command again picks the run up
    out = capsys.readouterr().out
    assert "rerun to resume" in out and "resumed after epoch 1" in out
    assert [json.loads(line)["epoch"] for line in out.splitlines() if line.startswith("{")] == [1, 2]


def test_trainer_builds_the_architecture_it_is_given_and_the_engine_loads_it(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "manifest.json").write_text((WEIGHTS_DIR / "manifest.json").read_text())
    for name in ("detector.npz", "char_lm.json.gz"):
        (weights / name).write_bytes((WEIGHTS_DIR / name).read_bytes())
    assert train_recognizer.main(["--epochs", "1", "--limit", "1", "--synthetic", "8", "--batch-size", "16",
                                  "--threads", "1", "--channels", "8,8,16,16,24,24", "--lstm-hidden", "16",
                                  "--width-jitter", "0.6,1.1", "--run-dir", str(tmp_path / "run"),
                                  "--weights-dir", str(weights)]) == 0
    config = json.loads((weights / "manifest.json").read_text())["recognizer"]["config"]
    assert config["channels"] == [8, 8, 16, 16, 24, 24] and config["lstm_hidden"] == 16
    assert "width jitter 0.6-1.1" in json.loads((weights / "manifest.json").read_text())["recognizer"]["training"]["data"]
    networks = load_networks(weights)  # built from the manifest's config, not the default one
    assert networks.recognizer.rnn.hidden_size == 16  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [["--channels", "8,8,16"], ["--channels", "8,8,x,16,16,16"],
                                 ["--width-jitter", "1.2,0.8"], ["--width-jitter", "0.8"]])
def test_trainer_refuses_a_malformed_architecture_or_jitter(bad: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_recognizer.main([*bad, "--run-dir", str(tmp_path / "run"), "--weights-dir", str(tmp_path / "w")])
    assert exit_info.value.code == 2


def test_key_field_trainer_writes_a_candidates_models_beside_its_weights(tmp_path: Path) -> None:
    from models.spec import load_field_extractor
    from models.training import train_fields

    weights = tmp_path / "weights"
    weights.mkdir()
    for path in WEIGHTS_DIR.iterdir():
        if path.is_file():
            (weights / path.name).write_bytes(path.read_bytes())
    shipped = (WEIGHTS_DIR / "manifest.json").read_text()
    assert train_fields.main(["--limit", "12", "--rounds", "20", "--threads", "1", "--write",
                              "--weights-dir", str(weights)]) == 0
    manifest = json.loads((weights / "manifest.json").read_text())
    entry = manifest["fields"]
    assert entry["training"]["receipts"] == 12 and 1 <= entry["lines"]["rounds"] <= 20
    assert entry != json.loads(shipped)["fields"]
    extractor = load_field_extractor(manifest, weights)  # the written files match their sha256
    assert extractor.model is not None and extractor.totals is not None
    assert (WEIGHTS_DIR / "manifest.json").read_text() == shipped  # the shipped models are untouched
