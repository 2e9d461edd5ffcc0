"""Fit the detector's box calibration on training receipts and (with --write) store it in the manifest.

The detector's boxes come out ~17% taller and ~0.14 heights wider than the annotated line
boxes the recognizer learned to read (threshold below the core's edge, whole map pixels).
This measures, over every detected box that matches an annotated one (IoU ≥ 0.5), the
median height ratio, width difference and centre offset, and stores them as the
``calibration`` of the detector's post-processing. Only training receipts are fitted on;
the validation fold is measured before and after, never fitted. Re-run after every
detector training run (its export resets the calibration).

    python -m models.training.calibrate_boxes [--limit N] [--threads 2] [--write] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.detection.geometry import quad_frame
from models.detection.matching import box_scores, match_boxes
from models.detection.postprocess import BoxCalibration, DetectedLine, join_overlapping
from models.manifest import WEIGHTS_DIR, read_manifest
from models.training.receipts import Receipt, load_all, read_val_fold, split_train_val

BoxPair = tuple[np.ndarray, np.ndarray]  # (detected quad, annotated quad), page pixels


def fit_calibration(pairs: list[BoxPair]) -> BoxCalibration:
    """Medians over matched boxes, so a few wrong matches (merged or split lines) do not move it."""
    height, width_pad, shift = [], [], []
    for detected, truth in pairs:
        d_centre, _, d_uy, d_width, d_height = quad_frame(detected)
        t_centre, _, _, t_width, t_height = quad_frame(truth)
        if d_height < 1:
            continue
        height.append(t_height / d_height)
        width_pad.append((t_width - d_width) / d_height)
        shift.append(float((t_centre - d_centre) @ d_uy) / d_height)
    if not height:
        raise ValueError("no detected box matches an annotated one: nothing to fit")
    return BoxCalibration(float(np.median(height)), float(np.median(width_pad)), float(np.median(shift)))


def box_agreement(pairs_per_page: list[tuple[list[np.ndarray], list[np.ndarray]]],
                  calibration: BoxCalibration) -> dict[str, float]:
    """Box precision/recall/F1 at IoU ≥ 0.5 and the mean IoU of matched boxes, after calibrating
    each page's pieces (in reading order) and joining a row's overlapping ones, as serving does."""
    matched = predicted = truth = 0
    ious: list[float] = []
    for pieces, annotated in pairs_per_page:
        detected = [line.quad for line in join_overlapping([DetectedLine(calibration.apply(q), 1.0) for q in pieces])]
        pairs = match_boxes(detected, annotated)
        matched, predicted, truth = matched + len(pairs), predicted + len(detected), truth + len(annotated)
        ious.extend(iou for _, _, iou in pairs)
    return box_scores(matched, predicted, truth) | {"mean_iou": float(np.mean(ious)) if ious else 0.0}


def detect_all(engine: Any, receipts: list[Receipt], label: str) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    from billstream_core.settings import LimitSettings
    from models.intake import decode_image

    out = []
    for receipt in tqdm(receipts, desc=label, mininterval=5, file=sys.stderr):
        gray = decode_image(receipt.image_path.read_bytes(), LimitSettings()).gray
        detected = [line.quad for line in engine.detect(gray)]
        out.append((detected, [np.asarray(line.quad, np.float32).reshape(4, 2) for line in receipt.lines]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--limit", type=int, default=None, help="fit on only this many training receipts")
    parser.add_argument("--write", action="store_true", help="store the fitted calibration in the manifest")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from models.engine.predictor import EngineOptions, OcrEngine
    from models.weights_io import update_manifest

    started = time.monotonic()
    engine = OcrEngine.load(args.weights_dir, EngineOptions(backend="onnx", threads=args.threads, decoder="greedy"))
    engine.box_calibration = BoxCalibration()  # measure the detector's own boxes,
    engine.join_pieces = False  # piece by piece: serving joins a row's pieces after calibrating
    train_receipts, val_receipts = split_train_val(load_all(), read_val_fold())
    train_receipts = train_receipts[:args.limit] if args.limit else train_receipts
    train = detect_all(engine, train_receipts, "training receipts")
    val = detect_all(engine, val_receipts, "validation fold")
    pairs = [(detected[i], annotated[j]) for detected, annotated in train
             for i, j, _ in match_boxes(detected, annotated)]
    fitted = fit_calibration(pairs)
    report: dict[str, Any] = {"calibration": fitted.to_dict(), "matched_boxes": len(pairs), "training_receipts": len(train),
              "validation_before": box_agreement(val, BoxCalibration()),
              "validation_after": box_agreement(val, fitted)}
    if args.write:
        manifest = read_manifest(args.weights_dir / "manifest.json")
        entry = manifest["detector"]
        entry["postprocess"] = entry.get("postprocess", {}) | {"calibration": fitted.to_dict()}
        entry["calibration_fit"] = {
            "command": "python -m models.training.calibrate_boxes --write",
            "data": f"{len(pairs)} matched boxes of {len(train)} training receipts (validation fold excluded)",
            "minutes": round((time.monotonic() - started) / 60, 1),
            "validation_before": {k: round(v, 4) for k, v in report["validation_before"].items()},
            "validation_after": {k: round(v, 4) for k, v in report["validation_after"].items()}}
        update_manifest("detector", entry, path=args.weights_dir / "manifest.json")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"fitted on {len(pairs)} matched boxes of {len(train)} training receipts: {fitted.to_dict()}")
    print("| validation fold | box_precision | box_recall | box_f1 | mean_iou |\n|---|---|---|---|---|")
    for name in ("before", "after"):
        row = report[f"validation_{name}"]
        print(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in ("box_precision", "box_recall", "box_f1", "mean_iou"))
              + " |")
    print("written to the manifest" if args.write else "not written (add --write)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
