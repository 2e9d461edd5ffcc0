"""The model version, the cache key's second half, names everything that changes the text."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.engine.predictor import EngineOptions, OcrEngine
from models.manifest import model_version, read_manifest, resolve_serving, serving_profile, worker_profile


def test_decoder_backend_and_precision_each_make_another_version() -> None:
    manifest = read_manifest()
    versions = {model_version(manifest, serving_profile(backend, decoder, half=half))
                for backend, half in (("torch", False), ("torch", True), ("onnx", False), ("onnx-int8", False))
                for decoder in ("beam", "greedy")}
    assert len(versions) == 8
    assert model_version(manifest, "onnx-int8.beam").startswith(model_version(manifest) + "+")


@pytest.mark.parametrize(("settings", "cuda", "profile"), [
    (("auto", "auto", "auto"), False, "onnx-int8.beam"),
    (("auto", "auto", "auto"), True, "torch-fp16.beam"),
    (("auto", "cpu", "greedy"), True, "onnx-int8.greedy"),
    (("torch", "cpu", "auto"), False, "torch-fp32.beam"),
])
def test_the_stream_app_resolves_the_profile_its_workers_serve(settings: tuple[str, str, str], cuda: bool,
                                                               profile: str) -> None:
    assert worker_profile(*settings, read_manifest(), cuda_available=cuda) == profile
    assert resolve_serving("auto", "auto", "auto", {}, cuda_available=False)[2] == "greedy"  # no LM: greedy


def test_engines_with_different_decoders_report_different_versions() -> None:
    beam = OcrEngine.load(options=EngineOptions(decoder="auto"))
    greedy = OcrEngine.load(options=EngineOptions(decoder="greedy"))
    assert beam.version.endswith("+torch-fp32.beam") and greedy.version.endswith("+torch-fp32.greedy")
    no_reread = OcrEngine.load(options=EngineOptions(reread=False))
    assert no_reread.version.endswith(".noreread") and len({beam.version, greedy.version, no_reread.version}) == 3


def test_a_change_to_the_engine_code_is_another_model_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              request: pytest.FixtureRequest) -> None:
    from models import manifest as manifest_module

    request.addfinalizer(manifest_module.code_revision.cache_clear)  # the real tree's hash, afterwards
    copy = tmp_path / "models"
    shutil.copytree(manifest_module.MODELS_DIR, copy, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    monkeypatch.setattr(manifest_module, "MODELS_DIR", copy)

    def version() -> str:
        manifest_module.code_revision.cache_clear()
        return model_version(read_manifest(), "onnx-int8.beam")

    first = version()
    assert version() == first  # the same code is the same version
    extractor = copy / "fields" / "extractor.py"
    extractor.write_text(extractor.read_text() + "\n# a rule changed\n")
    after_fields = version()
    skew = copy / "engine" / "skew.py"
    skew.write_text(skew.read_text() + "\n# a page step changed\n")
    after_reading = version()
    trainer = copy / "training" / "train_fields.py"
    trainer.write_text(trainer.read_text() + "\n# training only\n")
    assert len({first, after_fields, after_reading}) == 3 and version() == after_reading
    crlf = copy / "engine" / "skew.py"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))  # a Windows checkout
    assert version() == after_reading


def test_the_line_floor_is_part_of_the_version_and_can_be_turned_off() -> None:
    manifest = read_manifest()
    assert manifest["recognizer"]["line_floor"]["below"] > 0
    changed = {**manifest, "recognizer": {**manifest["recognizer"], "line_floor": {"below": 0.1}}}
    assert model_version(changed, "onnx-int8.beam") != model_version(manifest, "onnx-int8.beam")
    beam, greedy = OcrEngine.load(options=EngineOptions()), OcrEngine.load(options=EngineOptions(decoder="greedy"))
    assert beam.line_floor == manifest["recognizer"]["line_floor"]["below"]
    assert greedy.line_floor == manifest["recognizer"]["line_floor"]["greedy"]["below"]
    off = OcrEngine.load(options=EngineOptions(line_floor=False))
    assert off.line_floor == 0.0 and off.version.endswith(".nofloor") and off.version != beam.version
