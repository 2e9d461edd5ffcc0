"""Train the key-field line classifier on the engine's own reading of the training receipts.

    python -m models.training.train_fields [--write]

1. The engine as a CPU worker serves it (onnx-int8, beam) reads every receipt once; the
   lines are cached under ``~/.cache/billstream/fields/`` by model version.
2. Each recognised line is labelled company, address or other: matched to a ground-truth
   line by box overlap, that line's text is looked up in the receipt's key-field file.
3. A LightGBM classifier is trained on the training receipts (no fold vendor among them);
   the fold only picks the number of boosting rounds, by its multi-class log loss.
4. The table compares rules alone with the learned seller and address on the fold, in the
   SROIE task-3 measure, with the engine's own OCR in the loop. ``--write`` ships the model
   text (``models/weights/fields.txt``) and its manifest entry.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.fields.extractor import CLASSES, FIELDS, KeyFieldExtractor, rows_of
from models.fields.features import NAMES, line_features
from models.manifest import MANIFEST, WEIGHTS_DIR, read_manifest
from models.training.metrics import KeyFieldMetrics, field_key
from models.training.receipts import Receipt, load_all, read_val_fold, split_train_val

CACHE = Path.home() / ".cache" / "billstream" / "fields"
PARAMS = {"objective": "multiclass", "num_class": len(CLASSES), "learning_rate": 0.05, "num_leaves": 15,
          "min_data_in_leaf": 10, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
          "lambda_l2": 1.0, "seed": 2024, "deterministic": True, "verbose": -1, "num_threads": 2}


def key_fields(receipt: Receipt) -> dict[str, str]:
    path = receipt.image_path.with_suffix(".json")
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {name: str(data.get(name) or "") for name in FIELDS}


def read_receipts(receipts: list[Receipt], threads: int) -> dict[str, dict[str, Any]]:
    """name → {"lines": [(text, quad)], "size": (w, h)}, from the cache or read now."""
    from billstream_core.settings import LimitSettings
    from models.engine.predictor import OcrEngine, serving_options
    from models.intake import decode_image

    engine = OcrEngine.load(options=serving_options("onnx-int8", "cpu", threads, "auto"))
    manifest = read_manifest()  # the reading depends on the OCR models, not on the field model
    ocr = ".".join(manifest[k]["sha256"][:8] for k in ("detector", "recognizer", "language_model") if k in manifest)
    path = CACHE / f"ocr-{ocr}+onnx-int8.beam.jsonl"
    cached: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            cached[entry["name"]] = entry
    missing = [r for r in receipts if r.name not in cached]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        for n, receipt in enumerate(missing, 1):
            image = decode_image(receipt.image_path.read_bytes(), LimitSettings())
            page = engine.read_pages([image.gray])[0]
            entry = {"name": receipt.name, "size": [image.gray.shape[1], image.gray.shape[0]],
                     "lines": [[line.text, line.quad.reshape(-1).tolist()] for line in page.lines]}
            out.write(json.dumps(entry) + "\n")
            cached[receipt.name] = entry
            print(f"\rreading receipts: {n}/{len(missing)}", end="", file=sys.stderr, flush=True)
    if missing:
        print(file=sys.stderr)
    return cached


def _lines(entry: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    return [(text, np.array(quad, np.float32).reshape(4, 2)) for text, quad in entry["lines"]]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()
    bx0, by0, bx1, by1 = b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()
    w, h = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    inter = max(w, 0) * max(h, 0)
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def _squash(text: str) -> str:
    return "".join(field_key(text).split())


def labels(receipt: Receipt, lines: list[tuple[str, np.ndarray]], fields: dict[str, str]) -> np.ndarray:
    """Per recognised line: 1 company, 2 address, 0 other (by the matched ground-truth line)."""
    company, address = _squash(fields["company"]), _squash(fields["address"])
    out = np.zeros(len(lines), np.int64)
    for i, (text, quad) in enumerate(lines):
        overlaps = [(_iou(quad, gt.quad), gt.text) for gt in receipt.lines]
        best, truth = max(overlaps, default=(0.0, text))
        piece = _squash(truth if best >= 0.3 else text)
        if len(piece) < 2:
            continue
        if piece in company and (piece not in address or len(piece) > 0.5 * len(company)):
            out[i] = 1
        elif piece in address:
            out[i] = 2
    return out


def dataset(receipts: list[Receipt], read: dict[str, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for receipt in receipts:
        entry = read[receipt.name]
        lines = _lines(entry)
        if not lines:
            continue
        rows, rights = rows_of(lines)
        xs.append(line_features(rows, rights, tuple(entry["size"])))
        ys.append(labels(receipt, lines, key_fields(receipt)))
    return np.vstack(xs), np.concatenate(ys)


def score(extractor: KeyFieldExtractor, receipts: list[Receipt], read: dict[str, dict[str, Any]]) -> dict[str, float]:
    metrics = KeyFieldMetrics()
    for receipt in receipts:
        entry = read[receipt.name]
        found = extractor.extract(_lines(entry), tuple(entry["size"]))
        metrics.add({name: f.text for name, f in found.items()}, key_fields(receipt))
    return metrics.summary()


def main(argv: list[str] | None = None) -> int:
    import lightgbm

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=600, help="at most; the fold's log loss picks the best")
    parser.add_argument("--write", action="store_true", help="ship the model into models/weights")
    args = parser.parse_args(argv)

    receipts = load_all()
    train, val = split_train_val(receipts, read_val_fold())
    read = read_receipts(train + val, args.threads)
    x_train, y_train = dataset(train, read)
    x_val, y_val = dataset(val, read)
    print(f"lines: train {len(y_train)} ({np.bincount(y_train, minlength=3).tolist()} other/company/address), "
          f"fold {len(y_val)}", file=sys.stderr)
    started = time.monotonic()
    booster = lightgbm.train(PARAMS, lightgbm.Dataset(x_train, y_train, feature_name=list(NAMES)),
                             num_boost_round=args.rounds,
                             valid_sets=[lightgbm.Dataset(x_val, y_val, feature_name=list(NAMES))],
                             callbacks=[lightgbm.early_stopping(50, verbose=False)])
    seconds = time.monotonic() - started
    rules, learned = score(KeyFieldExtractor(None), val, read), score(KeyFieldExtractor(booster), val, read)
    print(f"fold: {len(val)} receipts, engine OCR; classifier {booster.best_iteration} rounds in {seconds:.1f}s")
    columns = ["key_f1", "key_precision", "key_recall"] + [f"key_{name}_f1" for name in FIELDS]
    print("| extractor | " + " | ".join(c.removeprefix("key_") for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, row in (("rules only", rules), ("rules + learned seller/address", learned)):
        print(f"| {label} | " + " | ".join(f"{row.get(c, 0.0):.3f}" for c in columns) + " |")
    if args.write:
        text = booster.model_to_string(num_iteration=booster.best_iteration)
        path = WEIGHTS_DIR / "fields.txt"
        path.write_text(text, encoding="utf-8")
        manifest = read_manifest()
        manifest["fields"] = {
            "file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "type": "lightgbm-text",
            "classes": list(CLASSES), "features": len(NAMES), "threshold": 0.5, "rounds": booster.best_iteration,
            "training": {"receipts": len(train), "lines": int(len(y_train)), "params": PARAMS,
                         "command": "python -m models.training.train_fields --write"},
            "metrics": {"fold": learned, "fold_rules_only": rules},
        }
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {path} and its manifest entry", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
