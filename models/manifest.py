"""The model manifest without torch: enough to name the model version (cache keys, results)."""
from __future__ import annotations

import hashlib
import json
from functools import cache
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


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_weights_file(path: Path, expected_sha256: str | None) -> None:
    """A missing file, or one that does not match the manifest's sha256, is a :class:`WeightsError`."""
    if not path.exists():
        raise WeightsError(f"weights file {path} is missing")
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise WeightsError(f"weights file {path.name} does not match the sha256 in the manifest "
                           f"(corrupt or replaced): expected {expected_sha256[:12]}…")


def read_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise WeightsError(f"model manifest {path} cannot be read: {exc}") from exc


def resolve_serving(backend: str, device: str, decoder: str, manifest: dict[str, Any], *,
                    cuda_available: bool) -> tuple[str, str, str]:
    """(backend, device, decoder) with every ``auto`` resolved, as a worker on a machine with
    or without a visible GPU runs them."""
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    if backend == "auto":
        backend = "torch" if device.startswith("cuda") else "onnx-int8"
    if decoder == "auto":
        decoder = "beam" if "language_model" in manifest else "greedy"
    return backend, device, decoder


def decoder_entry(entry: dict[str, Any] | None, decoder: str) -> dict[str, Any]:
    """A per-decoder setting of the manifest (reread, line floor): greedy decoding's confidences
    run lower than the beam's, so greedy has its own part (``entry["greedy"]``) where one is
    given; the top level is the beam's."""
    entry = entry or {}
    return entry["greedy"] if decoder == "greedy" and "greedy" in entry else entry


def serving_profile(backend: str, decoder: str, *, half: bool = False, reread: bool = True,
                    orientation: bool = True, level: bool = True, word_check: bool = True,
                    line_floor: bool = True) -> str:
    """The serving settings that change the text, resolved: the backend with its precision,
    and the decoder (``onnx-int8.beam``, ``torch-fp16.greedy``)."""
    precision = {"torch": "fp16" if half else "fp32", "onnx": "fp32"}.get(backend)
    name = f"{backend}-{precision}" if precision else backend
    return (f"{name}.{decoder}" + ("" if reread else ".noreread") + ("" if orientation else ".noorient")
            + ("" if level else ".nolevel") + ("" if word_check else ".nowords") + ("" if line_floor else ".nofloor"))


def worker_profile(backend: str, device: str, decoder: str, manifest: dict[str, Any], *, cuda_available: bool) -> str:
    """The profile a worker with these settings serves (a GPU worker runs torch in fp16)."""
    backend, device, decoder = resolve_serving(backend, device, decoder, manifest, cuda_available=cuda_available)
    return serving_profile(backend, decoder, half=backend == "torch" and device.startswith("cuda"))


# the key-field settings in the manifest that change a result
FIELD_SETTINGS = ("threshold", "extend", "total_currency")
MODELS_DIR = Path(__file__).resolve().parent


@cache
def code_revision(part: str) -> str:
    """A hash of the engine code that shapes an answer, so that no one has to remember to
    raise a revision by hand: ``"fields"`` is the key-field extraction (models/fields);
    ``"reading"`` is everything else under models/ but training, which turns pixels into
    lines (decoding, boxes, turning upright, levelling, PDF text). Line endings are
    normalised, so a checkout's conversion does not make another version."""
    if part == "fields":
        files = sorted((MODELS_DIR / "fields").glob("*.py"))
    elif part == "reading":
        files = sorted(p for p in MODELS_DIR.rglob("*.py")
                       if p.relative_to(MODELS_DIR).parts[0] not in ("fields", "training"))
    else:
        raise ValueError(f"unknown code part {part!r}; expected 'fields' or 'reading'")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(MODELS_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:12]


def network_hashes(manifest: dict[str, Any]) -> str:
    """The detector's and recognizer's hashes (8 characters each): what names their exports."""
    try:
        return f"{manifest['detector']['sha256'][:8]}.{manifest['recognizer']['sha256'][:8]}"
    except KeyError as exc:
        raise WeightsError(f"model manifest lacks the {exc.args[0]} entry") from exc


def model_version(manifest: dict[str, Any], profile: str | None = None) -> str:
    """Detector, recognizer (and decoder LM) hashes, a hash of the manifest's settings that
    shape the text (box post-processing, recognizer input, reread, decoder weights, key-field
    settings, and the engine's code), then the serving profile: anything that
    changes the text is a new version, so that results cached under one are never served for
    another (a beam-search deployment does not answer with a greedy one's text)."""
    version = network_hashes(manifest)
    try:
        if "language_model" in manifest:
            version += f".{manifest['language_model']['sha256'][:8]}"
        if "fields" in manifest:  # the key-field models: their answers are part of the result too
            shas = "".join(manifest["fields"][role]["sha256"] for role in ("lines", "totals") if role in manifest["fields"])
            version += "." + hashlib.sha256(shas.encode()).hexdigest()[:8]
        settings = {"postprocess": manifest["detector"].get("postprocess", {}),
                    "input": manifest["recognizer"].get("input", {}),
                    "reread": manifest["recognizer"].get("reread", {}),
                    "line_floor": manifest["recognizer"].get("line_floor", {}),
                    "decoder": manifest.get("language_model", {}).get("decoder", {}),
                    "lexicon": manifest.get("language_model", {}).get("lexicon", {}),
                    "fields": {k: manifest.get("fields", {}).get(k) for k in FIELD_SETTINGS},
                    "fields_code": code_revision("fields"), "reading_code": code_revision("reading")}
        version += "." + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
    except KeyError as exc:
        raise WeightsError(f"model manifest lacks the {exc.args[0]} entry") from exc
    return f"{version}+{profile}" if profile else version
