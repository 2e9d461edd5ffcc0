"""Each file the manifest names beside the networks is checked before it is used."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.manifest import WeightsError, read_manifest
from models.recognition.charset import Charset
from models.spec import load_field_extractor, load_language_model, load_word_check
from models.weights_io import WEIGHTS_DIR, file_sha256

LOADERS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[[dict[str, Any], Path], object]]] = {
    "language model": (lambda m: m["language_model"], load_language_model),
    "lexicon": (lambda m: m["language_model"]["lexicon"], lambda m, d: load_word_check(m, Charset(), d)),
    "key-field model": (lambda m: m["fields"]["lines"], load_field_extractor),
}


@pytest.mark.parametrize("what", list(LOADERS))
def test_a_missing_replaced_or_unreadable_file_is_a_weights_error_naming_it(what: str, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, weights)
    manifest = read_manifest(weights / "manifest.json")
    entry_of, load = LOADERS[what]
    assert load(manifest, weights) is not None  # the shipped files load
    path = weights / entry_of(manifest)["file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match=f"^{what} {path.name} does not match the sha256"):
        load(manifest, weights)
    path.unlink()
    with pytest.raises(WeightsError, match=f"^{what} .* is missing"):
        load(manifest, weights)
    if what != "key-field model":  # a truncated file whose hash the manifest was changed to give
        path.write_bytes(b"\x1f\x8b\x08\x00truncated")
        entry_of(manifest)["sha256"] = file_sha256(path)
        with pytest.raises(WeightsError, match=f"^{what} {path.name} cannot be read"):
            load(manifest, weights)
