"""Model weights as plain ``.npz`` arrays (no pickle) and the manifest that describes them.

The manifest (``models/weights/manifest.json``) records, per model, the file, its sha256,
the architecture config, the charset, the input size, the training data and the metrics.
Loading checks the sha256 first: a mismatch is a clear error, never a silent load.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.manifest import MANIFEST, WEIGHTS_DIR, WeightsError, check_weights_file, file_sha256, read_manifest

__all__ = ["MANIFEST", "WEIGHTS_DIR", "WeightsError", "file_sha256", "load_state", "read_manifest", "save_state",
           "update_manifest"]

def save_state(model: nn.Module, path: Path, *, half: bool = False) -> str:
    """Write the state dict as npz (float16 when ``half``); returns the file's sha256."""
    arrays = {}
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().numpy()
        arrays[name] = value.astype(np.float16) if half and value.dtype == np.float32 else value
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return file_sha256(path)


def load_state(model: nn.Module, path: Path, expected_sha256: str | None) -> nn.Module:
    check_weights_file(path, expected_sha256)
    try:
        with np.load(path, allow_pickle=False) as data:
            reference = model.state_dict()
            state = {}
            for name, ref in reference.items():
                if name not in data:
                    raise WeightsError(f"weights file {path.name} lacks tensor {name}")
                state[name] = torch.from_numpy(data[name].astype(ref.detach().cpu().numpy().dtype))
                if state[name].shape != ref.shape:
                    raise WeightsError(f"tensor {name} has shape {tuple(state[name].shape)}, "
                                       f"the architecture wants {tuple(ref.shape)}")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"weights file {path.name} cannot be read: {exc}") from exc
    model.load_state_dict(state)
    return model


def update_manifest(section: str, entry: dict[str, Any], path: Path = MANIFEST) -> None:
    manifest: dict[str, Any] = read_manifest(path) if path.exists() else {"format": 1}
    manifest[section] = entry
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
