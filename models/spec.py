"""What the manifest says the engine needs, read and checked without building a network:
the configs, the charset, the language model, the lexicon and the key-field models. A worker serving
the exported ONNX files loads only this, and never imports torch (600+ MB of a process's
memory); :mod:`models.networks` builds the torch modules on top of it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from models.detection.config import DetectorConfig
from models.fields.extractor import KeyFieldExtractor
from models.manifest import WEIGHTS_DIR, WeightsError, check_weights_file, file_sha256, read_manifest
from models.recognition.char_lm import CharNgramLM
from models.recognition.charset import Charset
from models.recognition.config import CRNNConfig
from models.recognition.ctc import BeamConfig
from models.recognition.lexicon import Lexicon, WordCheck

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    manifest: dict[str, Any]
    detector_config: DetectorConfig
    charset: Charset
    recognizer_config: CRNNConfig
    recognizer_input: dict[str, Any]


def read_spec(weights_dir: Path = WEIGHTS_DIR) -> ModelSpec:
    """A missing entry or a charset that does not fit the classifier is a :class:`WeightsError`."""
    manifest = read_manifest(weights_dir / "manifest.json")
    try:
        det_entry, rec_entry = manifest["detector"], manifest["recognizer"]
    except KeyError as exc:
        raise WeightsError(f"model manifest lacks the {exc.args[0]} entry") from exc
    charset = Charset.from_manifest(rec_entry["charset"])
    rec_config = CRNNConfig.from_dict(rec_entry["config"])
    if rec_config.num_classes != len(charset):
        raise WeightsError(f"recognizer has {rec_config.num_classes} classes, charset implies {len(charset)}")
    return ModelSpec(manifest, DetectorConfig.from_dict(det_entry["config"]), charset, rec_config, rec_entry["input"])


def _checked_file(entry: dict[str, Any], weights_dir: Path, what: str) -> Path:
    """The entry's file, there and matching the sha256 the manifest gives it."""
    path = weights_dir / entry["file"]
    if not path.exists():
        raise WeightsError(f"{what} {path} is missing")
    if file_sha256(path) != entry["sha256"]:
        raise WeightsError(f"{what} {path.name} does not match the sha256 in the manifest "
                           f"(corrupt or replaced): expected {entry['sha256'][:12]}…")
    return path


def _read_checked(entry: dict[str, Any], weights_dir: Path, what: str, read: Callable[[Path], T]) -> T:
    path = _checked_file(entry, weights_dir, what)
    try:
        return read(path)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise WeightsError(f"{what} {path.name} cannot be read: {exc}") from exc


def load_language_model(manifest: dict[str, Any], weights_dir: Path = WEIGHTS_DIR
                        ) -> tuple[CharNgramLM, BeamConfig] | None:
    """The decoder's LM and beam settings, sha256-checked; None when the manifest has none."""
    entry = manifest.get("language_model")
    if entry is None:
        return None
    return _read_checked(entry, weights_dir, "language model", CharNgramLM.load), BeamConfig(**entry.get("decoder", {}))


def load_word_check(manifest: dict[str, Any], charset: Charset, weights_dir: Path = WEIGHTS_DIR) -> WordCheck | None:
    """The beam's word check with its sha256-checked lexicon; None when the manifest has none."""
    entry = (manifest.get("language_model") or {}).get("lexicon")
    if entry is None:
        return None
    return WordCheck(_read_checked(entry, weights_dir, "lexicon", Lexicon.load), charset, float(entry.get("margin", 5.0)))


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
        texts[role] = _checked_file(entry[role], weights_dir, "key-field model").read_text(encoding="utf-8")
    try:
        extend = {name: (float(up), float(down)) for name, (up, down) in entry.get("extend", {}).items()}
        return KeyFieldExtractor.from_text(texts["lines"], texts.get("totals"), float(entry.get("threshold", 0.5)),
                                           entry.get("total_currency", False), extend)
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"key-field models cannot be read: {exc}") from exc


def check_weight_files(manifest: dict[str, Any], weights_dir: Path = WEIGHTS_DIR) -> None:
    """Both networks' weights files match their sha256: serving from an ONNX export made of
    them is serving them (the export's cache is keyed by the model version, which names them)."""
    for role in ("detector", "recognizer"):
        check_weights_file(weights_dir / manifest[role]["file"], manifest[role]["sha256"])
