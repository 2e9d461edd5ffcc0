"""Choose the line floor: the confidence below which a recognised line is dropped as not
text (models.engine.line_floor), for each decoder.

Tuned where the reread and the word check are: on the receipts that neither training nor
the validation fold uses, read whole by the engine (its own boxes, no floor). Every floor
is scored by page CER over those pages, with word F1 beside it; the floor kept has the
lowest CER, and a tie goes to the lower floor, which drops fewer lines. CER, not word F1:
a real line read with little confidence is still mostly right, and dropping it loses its
characters, which the CER counts and word F1 (all its words wrong either way) does not; on
14 receipts the characters are also the steadier measure. The validation fold is not read.

    python -m models.training.tune_line_floor [--threads 2] [--write] [--json]
"""
from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from models.evaluation import ordered_text
from models.manifest import read_manifest
from models.training.metrics import PageMetrics
from models.training.receipts import Receipt, held_out_receipts, load_all, read_val_fold
from models.training.tuning import tuning_parser
from models.weights_io import update_manifest

FLOORS = tuple(round(0.1 * k, 1) for k in range(10))

# one page as read without a floor: its lines (text, confidence, quad), and its truth (text, quad)
Page = tuple[list[tuple[str, float, np.ndarray]], list[tuple[str, np.ndarray]]]


def floor_rows(pages: list[Page], floors: tuple[float, ...] = FLOORS) -> list[dict[str, Any]]:
    """Word F1, page CER and the share of lines dropped, for each floor."""
    rows = []
    total = max(sum(len(lines) for lines, _ in pages), 1)
    for floor in floors:
        metrics = PageMetrics()
        dropped = 0
        for lines, truth in pages:
            kept = [(text, quad) for text, confidence, quad in lines if confidence >= floor]
            dropped += len(lines) - len(kept)
            metrics.add([t for t, _ in kept], [t for t, _ in truth], ordered_text(kept), ordered_text(truth))
        summary = metrics.summary()
        rows.append({"below": floor, "word_f1_ci": round(summary["word_f1_ci"], 4),
                     "page_cer": round(summary["page_cer"], 4), "dropped_share": round(dropped / total, 4)})
    return rows


def best_floor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The lowest page CER; among equals, the lowest floor."""
    return min(rows, key=lambda r: (r["page_cer"], r["below"]))


def read_pages(engine: Any, receipts: list[Receipt]) -> list[Page]:
    from billstream_core.settings import LimitSettings
    from models.intake import decode_image

    pages: list[Page] = []
    for receipt in tqdm(receipts, desc="reading", file=sys.stderr):
        page = engine.read_pages([decode_image(receipt.image_path.read_bytes(), LimitSettings()).gray])[0]
        pages.append(([(line.text, line.confidence, line.quad) for line in page.lines],
                      [(line.text, np.asarray(line.quad, np.float32).reshape(4, 2)) for line in receipt.lines]))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = tuning_parser(__doc__, "the chosen floors")
    args = parser.parse_args(argv)

    from models.engine.predictor import EngineOptions, OcrEngine

    manifest = read_manifest(args.weights_dir / "manifest.json")
    receipts = held_out_receipts(load_all(), read_val_fold())
    if not receipts:
        parser.error("no receipts outside training and validation to tune on")
    decoders = ["beam", "greedy"] if manifest.get("language_model") else ["greedy"]
    results: dict[str, dict[str, Any]] = {}
    for decoder in decoders:
        engine = OcrEngine.load(args.weights_dir, EngineOptions(backend="onnx-int8", threads=args.threads,
                                                                decoder=decoder, line_floor=False))
        rows = floor_rows(read_pages(engine, receipts))
        results[decoder] = {"chosen": best_floor(rows), "rows": rows}

    if args.write:
        chosen = {d: r["chosen"]["below"] for d, r in results.items()}
        entry: dict[str, Any] = {"below": chosen[decoders[0]]}
        if decoders[0] != "greedy":
            entry["greedy"] = {"below": chosen["greedy"]}
        manifest["recognizer"]["line_floor"] = entry  # what the engine reads, and the model version hashes
        manifest["recognizer"]["line_floor_choice"] = {
            "command": "python -m models.training.tune_line_floor --write",
            "data": f"{len(receipts)} receipts in neither training nor the validation fold, "
                    "read whole with the engine's own boxes (onnx-int8)",
            "without": {d: r["rows"][0] for d, r in results.items()},
            "with": {d: r["chosen"] for d, r in results.items()}}
        update_manifest("recognizer", manifest["recognizer"], path=args.weights_dir / "manifest.json")
    if args.json:
        print(json.dumps(results))
        return 0
    for decoder, result in results.items():
        print(f"{decoder}: {len(receipts)} held-out receipts, engine boxes")
        print("| floor | page CER | word F1 | lines dropped |\n|---|---|---|---|")
        for row in result["rows"]:
            mark = "**" if row is result["chosen"] else ""
            print(f"| {mark}{row['below']:.1f}{mark} | {row['page_cer']:.4f} | {row['word_f1_ci']:.4f} | "
                  f"{row['dropped_share']:.1%} |")
    print("written to the manifest" if args.write else "not written (add --write)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
