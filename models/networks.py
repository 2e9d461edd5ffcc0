"""The two networks as the manifest describes them, built and loaded with checked weights:
what the torch backend and the ONNX export need (the rest is :mod:`models.spec`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from models.detection.config import DetectorConfig
from models.detection.net import build_detector
from models.manifest import WEIGHTS_DIR
from models.recognition.charset import Charset
from models.recognition.crnn import build_crnn
from models.spec import read_spec
from models.weights_io import load_state


@dataclass(frozen=True)
class Networks:
    manifest: dict[str, Any]
    detector_config: DetectorConfig
    detector: nn.Module
    charset: Charset
    recognizer: nn.Module
    recognizer_input: dict[str, Any]


def load_networks(weights_dir: Path = WEIGHTS_DIR) -> Networks:
    """Both models in eval mode; besides :func:`models.spec.read_spec`'s checks, a weights
    file that does not match its sha256 is a :class:`WeightsError`."""
    spec = read_spec(weights_dir)
    det_entry, rec_entry = spec.manifest["detector"], spec.manifest["recognizer"]
    detector = load_state(build_detector(spec.detector_config), weights_dir / det_entry["file"], det_entry["sha256"])
    recognizer = load_state(build_crnn(spec.recognizer_config), weights_dir / rec_entry["file"], rec_entry["sha256"])
    return Networks(spec.manifest, spec.detector_config, detector.eval(), spec.charset, recognizer.eval(),
                    spec.recognizer_input)
