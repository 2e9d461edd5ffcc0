"""Export the shipped weights to ONNX (and an int8 recognizer) for the CPU serving path.

The ``.npz`` weights in models/weights/ are the source of truth; ONNX files are derived,
written to the user cache under the model version, and re-made when missing.

    python -m models.export [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.manifest import WEIGHTS_DIR, network_hashes, read_manifest

if TYPE_CHECKING:
    from models.networks import Networks

DEFAULT_CACHE = Path.home() / ".cache" / "billstream" / "onnx"
EXPORT_REVISION = 1  # raised with any change to how the files are made


def onnx_paths(manifest: dict[str, Any], out_root: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Where the export of these weights lies (made or not): under the networks' hashes and
    the export's revision (the text-shaping settings, the LM and the key-field models do not
    change the ONNX files)."""
    out = out_root / f"{network_hashes(manifest)}.export{EXPORT_REVISION}"
    return {"detector": out / "detector.onnx", "recognizer": out / "crnn.onnx", "recognizer_int8": out / "crnn.int8.onnx"}


def export_onnx(weights_dir: Path = WEIGHTS_DIR, out_root: Path = DEFAULT_CACHE, *,
                networks: Networks | None = None) -> dict[str, Path]:
    """Paths of detector.onnx, crnn.onnx and crnn.int8.onnx for the shipped weights
    (``networks``: already loaded from ``weights_dir``, to skip loading them again)."""
    import torch

    from models.networks import load_networks

    manifest = networks.manifest if networks is not None else read_manifest(weights_dir / "manifest.json")
    paths = onnx_paths(manifest, out_root)
    if all(path.exists() for path in paths.values()):
        return paths
    next(iter(paths.values())).parent.mkdir(parents=True, exist_ok=True)
    # written under temporary names and renamed: two workers starting together never read half a file
    tmp = {name: path.with_name(f".{path.name}.{os.getpid()}.tmp") for name, path in paths.items()}
    networks = networks or load_networks(weights_dir)
    detector, recognizer = networks.detector, networks.recognizer
    with torch.inference_mode(), warnings.catch_warnings():
        # the tracer's notes on shape checks and LSTM batch sizes: the parity test covers both
        warnings.simplefilter("ignore")
        torch.onnx.export(detector, (torch.rand(1, 1, 64, 96),), str(tmp["detector"]), input_names=["images"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
        torch.onnx.export(recognizer, (torch.rand(2, 1, 32, 128),), str(tmp["recognizer"]), input_names=["images"],
                          output_names=["log_probs"], opset_version=17, dynamo=False,
                          dynamic_axes={"images": {0: "batch", 3: "width"}, "log_probs": {0: "steps", 1: "batch"}})
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # int8 weights for the sequence model and classifier; convolutions stay float (ConvInteger is slow on CPU)
    quantize_dynamic(str(tmp["recognizer"]), str(tmp["recognizer_int8"]), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["LSTM", "MatMul", "Gemm"])
    for name, path in paths.items():
        os.replace(tmp[name], path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    for name, path in export_onnx(args.weights, out_root=args.out).items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
