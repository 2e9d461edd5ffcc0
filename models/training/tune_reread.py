"""Choose when and how the engine reads a doubtful line again (its ``reread`` entry), for
each decoder: the beam's confidences and greedy decoding's are on different scales.

Tuned on the receipts that neither training nor the validation fold uses: receipts-extra's
receipts of the validation vendors (excluded from training so that no vendor straddles the
split). Their GT line crops are read once, then every candidate (confidence threshold x
stretch factors) is scored by exact lines; the cheapest of those within one line of the best
is kept (a second reading costs time on every doubtful line; one crop is noise). The
validation fold is not read.

    python -m models.training.tune_reread [--threads 2] [--write] [--json]
"""
from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from models.engine.reread import most_confident, stretch_width
from models.manifest import read_manifest
from models.training.metrics import LineAccuracy
from models.training.receipts import held_out_receipts, load_all, read_val_fold
from models.training.tuning import tuning_parser

THRESHOLDS = (0.95, 0.98, 0.99)
FACTORS = (1.15, 1.3, 1.45)


def held_out_crops(max_width: int, margin: float) -> tuple[list[np.ndarray], list[str], int]:
    """The held-out receipts' GT line crops at the input height, their texts, and the receipt count."""
    from billstream_core.settings import LimitSettings
    from models.intake import decode_image
    from models.preprocess import crop_quad, resize_to_height

    held_out = held_out_receipts(load_all(), read_val_fold())
    lines, truths = [], []
    for receipt in tqdm(held_out, desc="cropping", file=sys.stderr):
        gray = decode_image(receipt.image_path.read_bytes(), LimitSettings()).gray
        for line in receipt.lines:
            lines.append(resize_to_height(crop_quad(gray, line.quad, margin), 32, max_width))
            truths.append(line.text)
    return lines, truths, len(held_out)


def candidate_rows(read: Callable[[list[np.ndarray]], list[tuple[str, float]]], lines: list[np.ndarray], truths: list[str], max_width: int) -> list[dict[str, Any]]:
    """Line exact and extra readings per line of no reread and of every candidate."""
    first = read(lines)
    doubtful = [i for i, (_, confidence) in enumerate(first) if confidence < max(THRESHOLDS)]
    stretched = {factor: dict(zip(doubtful, read([stretch_width(lines[i], factor, max_width) for i in doubtful])))
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
    return rows


def best_row(rows: list[dict[str, Any]], lines: int) -> dict[str, Any]:
    """The fewest extra readings among the rows at most one of ``lines`` crops below the best."""
    top = max(r["line_exact_ci"] for r in rows)
    near = [r for r in rows if r["line_exact_ci"] >= top - 1.0 / lines - 1e-9]
    return min(near, key=lambda r: (r["reread_share"], -r["line_exact_ci"]))


def main(argv: list[str] | None = None) -> int:
    parser = tuning_parser(__doc__, "the chosen entries")
    args = parser.parse_args(argv)

    from models.engine.predictor import EngineOptions, OcrEngine
    from models.weights_io import update_manifest

    manifest = read_manifest(args.weights_dir / "manifest.json")
    decoders = ["beam", "greedy"] if manifest.get("language_model") else ["greedy"]
    lines: list[np.ndarray] = []
    truths: list[str] = []
    receipts = 0
    results: dict[str, dict[str, Any]] = {}
    for decoder in decoders:
        engine = OcrEngine.load(args.weights_dir, EngineOptions(backend="onnx-int8", threads=args.threads, reread=False,
                                                                decoder=decoder))
        if not lines:
            lines, truths, receipts = held_out_crops(engine.max_line_width, engine.crop_margin)
            if not lines:
                parser.error("no receipts outside training and validation to tune on")
        rows = candidate_rows(engine.recognize_resized, lines, truths, engine.max_line_width)
        results[decoder] = {"chosen": best_row(rows, len(lines)), "rows": rows}

    if args.write:
        chosen = {d: {"below": r["chosen"]["below"], "stretch": r["chosen"]["stretch"]} for d, r in results.items()}
        entry = chosen[decoders[0]] | ({"greedy": chosen["greedy"]} if decoders[0] != "greedy" else {})
        manifest["recognizer"]["reread"] = entry
        manifest["recognizer"]["reread_choice"] = {
            "command": "python -m models.training.tune_reread --write",
            "data": f"{len(lines)} GT line crops of {receipts} receipts in neither training nor the validation fold",
            "line_exact_ci": {d: {"without": round(r["rows"][0]["line_exact_ci"], 4),
                                  "with": round(r["chosen"]["line_exact_ci"], 4)} for d, r in results.items()}}
        update_manifest("recognizer", manifest["recognizer"], path=args.weights_dir / "manifest.json")
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{len(lines)} GT line crops of {receipts} held-out receipts")
    for decoder, result in results.items():
        print(f"\n{decoder} decoding\n| below | stretch | line_exact_ci | extra readings per line |\n|---|---|---|---|")
        for row in result["rows"]:
            mark = " (chosen)" if row is result["chosen"] else ""
            print(f"| {row['below']} | {'/'.join(map(str, row['stretch'])) or '-'} | {row['line_exact_ci']:.4f}{mark} | "
                  f"{row['reread_share']:.2f} |")
    print("written to the manifest" if args.write else "not written (add --write)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
