"""The two networks as the manifest describes them, built and loaded with checked weights.

One place for what the engine (any backend) and the ONNX export both need.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from models.detection.net import DetectorConfig, build_detector
from models.fields.extractor import KeyFieldExtractor
from models.manifest import WEIGHTS_DIR, WeightsError, read_manifest
from models.recognition.char_lm import CharNgramLM
from models.recognition.charset import Charset
from models.recognition.crnn import CRNNConfig, build_crnn
from models.recognition.ctc import BeamConfig
from models.weights_io import file_sha256, load_state


@dataclass(frozen=True)
class Networks:
    manifest: dict[str, Any]
    detector_config: DetectorConfig
    detector: nn.Module
    charset: Charset
    recognizer: nn.Module
    recognizer_input: dict[str, Any]


def load_networks(weights_dir: Path = WEIGHTS_DIR) -> Networks:
    """Both models in eval mode; a missing entry, a charset that does not fit the classifier
    or a weights file that does not match its sha256 is a :class:`WeightsError`."""
    manifest = read_manifest(weights_dir / "manifest.json")
    try:
        det_entry, rec_entry = manifest["detector"], manifest["recognizer"]
    except KeyError as exc:
        raise WeightsError(f"model manifest lacks the {exc.args[0]} entry") from exc
    detector_config = DetectorConfig.from_dict(det_entry["config"])
    charset = Charset.from_manifest(rec_entry["charset"])
    rec_config = CRNNConfig.from_dict(rec_entry["config"])
    if rec_config.num_classes != len(charset):
        raise WeightsError(f"recognizer has {rec_config.num_classes} classes, charset implies {len(charset)}")
    detector = load_state(build_detector(detector_config), weights_dir / det_entry["file"], det_entry["sha256"])
    recognizer = load_state(build_crnn(rec_config), weights_dir / rec_entry["file"], rec_entry["sha256"])
    return Networks(manifest, detector_config, detector.eval(), charset, recognizer.eval(), rec_entry["input"])


def load_language_model(manifest: dict[str, Any], weights_dir: Path = WEIGHTS_DIR
                        ) -> tuple[CharNgramLM, BeamConfig] | None:
    """The decoder's LM and beam settings, sha256-checked; None when the manifest has none."""
    entry = manifest.get("language_model")
    if entry is None:
        return None
    path = weights_dir / entry["file"]
    if not path.exists():
        raise WeightsError(f"language model {path} is missing")
    if file_sha256(path) != entry["sha256"]:
        raise WeightsError(f"language model {path.name} does not match the sha256 in the manifest "
                           f"(corrupt or replaced): expected {entry['sha256'][:12]}…")
    try:
        lm = CharNgramLM.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"language model {path.name} cannot be read: {exc}") from exc
    return lm, BeamConfig(**entry.get("decoder", {}))


def load_field_extractor(manifest: dict[str, Any], weights_dir: Path = WEIGHTS_DIR) -> KeyFieldExtractor:
    """The key-field extractor with its sha256-checked models; rules alone when the manifest
    ships none."""
    entry = manifest.get("fields")
    if entry is None:
        return KeyFieldExtractor(None)
    texts = {}
    for role in ("lines", "totals"):
        if role not in entry:
            continue
        path = weights_dir / entry[role]["file"]
        if not path.exists():
            raise WeightsError(f"key-field model {path} is missing")
        if file_sha256(path) != entry[role]["sha256"]:
            raise WeightsError(f"key-field model {path.name} does not match the sha256 in the manifest "
                               f"(corrupt or replaced): expected {entry[role]['sha256'][:12]}…")
        texts[role] = path.read_text(encoding="utf-8")
    try:
        return KeyFieldExtractor.from_text(texts["lines"], texts.get("totals"), float(entry.get("threshold", 0.5)),
                                           bool(entry.get("total_currency", False)))
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"key-field models cannot be read: {exc}") from exc
