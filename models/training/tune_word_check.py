"""Choose the word check's margin: how far the line's CTC log-likelihood may fall for lexicon
words (models.recognition.lexicon).

Tuned where the reread is: on the GT line crops of the receipts that neither training nor
the validation fold uses. Each crop is read once by the beam; every margin is scored by
exact lines, with the lines it made right and those it spoiled. The margin kept reads the
most lines exactly among those that spoil none: a spoiled line is mostly a name read right
and "corrected" to a word (``MIZU MENTAI`` -> ``MENTAL``), and a seller's name is a key
field. A tie goes to the smaller margin, which changes fewer words. The validation fold is
not read.

    python -m models.training.tune_word_check [--threads 2] [--write] [--json]
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm import tqdm

from models.manifest import read_manifest
from models.training.metrics import LineAccuracy, collapse
from models.training.tune_reread import held_out_crops
from models.training.tuning import tuning_parser
from models.weights_io import update_manifest

MARGINS = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)


def margin_rows(readings: list[str], checked: dict[float, list[str]], truths: list[str]) -> list[dict[str, Any]]:
    """Line exact without the check (margin 0) and at each margin, with the lines it changed."""
    def exact(texts: list[str]) -> float:
        accuracy = LineAccuracy()
        for text, truth in zip(texts, truths):
            accuracy.add(text, truth)
        return accuracy.summary()["line_exact_ci"]

    rows: list[dict[str, Any]] = [{"margin": 0.0, "line_exact_ci": exact(readings), "made_right": 0, "spoiled": 0}]
    for margin, texts in checked.items():
        right = [collapse(t).upper() == collapse(truth).upper() for t, truth in zip(texts, truths)]
        before = [collapse(r).upper() == collapse(truth).upper() for r, truth in zip(readings, truths)]
        rows.append({"margin": margin, "line_exact_ci": exact(texts),
                     "made_right": sum(r and not b for r, b in zip(right, before)),
                     "spoiled": sum(b and not r for r, b in zip(right, before))})
    return rows


def best_margin(rows: list[dict[str, Any]]) -> float:
    """The most exact lines among the margins that spoil none (a tie goes to the smaller)."""
    harmless = [r for r in rows if r["spoiled"] == 0]
    return min(harmless, key=lambda r: (-r["line_exact_ci"], r["margin"]))["margin"]


def main(argv: list[str] | None = None) -> int:
    parser = tuning_parser(__doc__, "the chosen margin")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.recognition.ctc import beam_decode
    from models.spec import load_word_check

    engine = OcrEngine.load(args.weights_dir, EngineOptions(backend="onnx-int8", threads=args.threads, reread=False,
                                                            word_check=False))
    check = load_word_check(read_manifest(args.weights_dir / "manifest.json"), engine.charset, args.weights_dir)
    if engine.language_model is None or check is None:
        raise SystemExit("the manifest has no language model or no lexicon: run build_lm and build_lexicon first")
    lines, truths, receipts = held_out_crops(engine.max_line_width, engine.crop_margin)
    readings, log_probs = [], []
    for line in tqdm(lines, desc="reading", file=sys.stderr):
        out = engine.recognizer((line.astype(np.float32) / 255.0)[None, None])
        length = int(np.ceil(line.shape[1] / 4))
        readings.append(beam_decode(out, engine.charset, *engine.language_model, lengths=np.array([length]))[0][0])
        log_probs.append(np.asarray(out)[:length, 0])
    checked = {margin: [replace(check, margin=margin).correct(text, lp) for text, lp in zip(readings, log_probs)]
               for margin in tqdm(MARGINS, desc="margins", file=sys.stderr)}
    rows = margin_rows(readings, checked, truths)
    chosen = best_margin(rows)
    if args.json:
        print(json.dumps({"rows": rows, "chosen": chosen}))
    else:
        print(f"{len(lines)} GT crops of {receipts} held-out receipts, beam, no reread")
        print("| margin (nats) | line exact | made right | spoiled |\n|---|---|---|---|")
        for row in rows:
            print(f"| {row['margin']:g} | {row['line_exact_ci']:.4f} | {row['made_right']} | {row['spoiled']} |")
        print(f"chosen: {chosen:g}")
    if args.write:
        manifest_path = args.weights_dir / "manifest.json"
        entry = read_manifest(manifest_path)["language_model"]
        entry["lexicon"] |= {"margin": chosen, "margin_choice": {
            "data": f"{len(lines)} GT crops of {receipts} receipts in neither training nor the fold",
            "rows": rows, "command": "python -m models.training.tune_word_check --write"}}
        update_manifest("language_model", entry, path=manifest_path)
        print(f"wrote margin {chosen:g} to {manifest_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
