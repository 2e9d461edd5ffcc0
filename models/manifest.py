"""The model manifest without torch: enough to name the model version (cache keys, results)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from billstream_core.errors import BillstreamError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
MODEL_NAME = "billstream-ocr"
BACKENDS = ("torch", "onnx", "onnx-int8")  # the engine's ways to run the shipped weights
DECODERS = ("auto", "greedy", "beam")  # auto: beam with the LM when the manifest has one


class WeightsError(BillstreamError):
    code = "MODEL_WEIGHTS"


def read_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise WeightsError(f"model manifest {path} cannot be read: {exc}") from exc


def model_version(manifest: dict[str, Any]) -> str:
    """Detector, recognizer (and decoder LM) hashes, then a hash of the settings that shape the
    text (box post-processing, recognizer input, decoder): anything that changes the text is a
    new version, so results cached under the old one are not served for it."""
    try:
        version = f"{manifest['detector']['sha256'][:8]}.{manifest['recognizer']['sha256'][:8]}"
        if "language_model" in manifest:
            version += f".{manifest['language_model']['sha256'][:8]}"
        settings = {"postprocess": manifest["detector"].get("postprocess", {}),
                    "input": manifest["recognizer"].get("input", {}),
                    "reread": manifest["recognizer"].get("reread", {}),
                    "decoder": manifest.get("language_model", {}).get("decoder", {})}
        return version + "." + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
    except KeyError as exc:
        raise WeightsError(f"model manifest lacks the {exc.args[0]} entry") from exc
