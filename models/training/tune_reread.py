"""Choose when and how the engine reads a doubtful line again (its ``reread`` entry).

Tuned on the receipts that neither training nor the validation fold uses: receipts-extra's
receipts of the validation vendors (excluded from training so that no vendor straddles the
split). Their GT line crops are read once, then every candidate (confidence threshold x
stretch factors) is scored by exact lines; the best, the cheaper on a tie, is kept. The
validation fold is not read.

    python -m models.training.tune_reread [--threads 2] [--write] [--json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.engine.reread import most_confident, stretch_width
from models.manifest import WEIGHTS_DIR, read_manifest
from models.training.metrics import LineAccuracy
from models.training.receipts import load_all, read_val_fold, split_train_val

THRESHOLDS = (0.95, 0.98, 0.99)
FACTORS = (1.15, 1.3, 1.45)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--write", action="store_true", help="store the chosen entry in the manifest")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from billstream_core.settings import LimitSettings
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.intake import decode_image
    from models.preprocess import crop_quad, resize_to_height
    from models.weights_io import update_manifest

    engine = OcrEngine.load(args.weights_dir, EngineOptions(backend="onnx-int8", threads=args.threads, reread=False))
    receipts = load_all()
    train, val = split_train_val(receipts, read_val_fold())
    used = {r.name for r in train} | {r.name for r in val}
    held_out = [r for r in receipts if r.name not in used]
    if not held_out:
        parser.error("no receipts outside training and validation to tune on")
    lines, truths = [], []
    for receipt in tqdm(held_out, desc="cropping", file=sys.stderr):
        gray = decode_image(receipt.image_path.read_bytes(), LimitSettings()).gray
        for line in receipt.lines:
            lines.append(resize_to_height(crop_quad(gray, line.quad, engine.crop_margin), 32, engine.max_line_width))
            truths.append(line.text)
    first = engine.recognize_resized(lines)
    doubtful = [i for i, (_, confidence) in enumerate(first) if confidence < max(THRESHOLDS)]
    stretched = {factor: dict(zip(doubtful, engine.recognize_resized(
        [stretch_width(lines[i], factor, engine.max_line_width) for i in doubtful])))
        for factor in tqdm(FACTORS, desc="stretched readings", file=sys.stderr)}

    def exact(readings: list[tuple[str, float]]) -> float:
        accuracy = LineAccuracy()
        for (text, _), truth in zip(readings, truths):
            accuracy.add(text, truth)
        return accuracy.summary()["line_exact_ci"]

    rows: list[dict[str, Any]] = [{"below": 0.0, "stretch": [], "line_exact_ci": exact(first), "reread_share": 0.0}]
    candidates = [(below, combo) for below in THRESHOLDS for n in (1, 2, 3) for combo in itertools.combinations(FACTORS, n)]
    for below, combo in candidates:
        readings = most_confident(first, [{i: r for i, r in stretched[f].items() if first[i][1] < below}
                                          for f in combo])
        share = sum(c < below for _, c in first) * len(combo) / len(lines)
        rows.append({"below": below, "stretch": list(combo), "line_exact_ci": exact(readings), "reread_share": share})
    best = max(rows, key=lambda r: (round(r["line_exact_ci"], 4), -r["reread_share"]))
    if args.write:
        manifest = read_manifest(args.weights_dir / "manifest.json")
        manifest["recognizer"]["reread"] = {"below": best["below"], "stretch": best["stretch"]}
        manifest["recognizer"]["reread_choice"] = {
            "command": "python -m models.training.tune_reread --write",
            "data": f"{len(lines)} GT line crops of {len(held_out)} receipts in neither training nor the validation fold",
            "line_exact_ci": {"without": round(rows[0]["line_exact_ci"], 4), "with": round(best["line_exact_ci"], 4)}}
        update_manifest("recognizer", manifest["recognizer"], path=args.weights_dir / "manifest.json")
    if args.json:
        print(json.dumps({"chosen": best, "rows": rows}))
        return 0
    print(f"{len(lines)} GT line crops of {len(held_out)} held-out receipts")
    print("| below | stretch | line_exact_ci | extra readings per line |\n|---|---|---|---|")
    for row in rows:
        mark = " (chosen)" if row is best else ""
        print(f"| {row['below']} | {'/'.join(map(str, row['stretch'])) or '-'} | {row['line_exact_ci']:.4f}{mark} | "
              f"{row['reread_share']:.2f} |")
    print("written to the manifest" if args.write else "not written (add --write)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
