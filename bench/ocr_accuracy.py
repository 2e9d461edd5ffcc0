"""Accuracy and speed of our engine beside RapidOCR and Tesseract, on the same receipts and
the same CPU threads, in one run (the metrics of docs/benchmarks.md).

    python -m bench.ocr_accuracy [--split ../shared/data/receipts-dev] [--fold val] [--threads 2]
        [--systems billstream,rapidocr,tesseract] [--weights-dir DIR ...] [--json]
        [--device cuda --precisions fp32,fp16]   # fp16 against fp32 on a GPU, for accuracy
        [--decoders beam --word-check off,on]     # the beam with and without its lexicon check
        [--line-floor off,on]                     # with and without the confidence floor for lines

``--weights-dir`` more than once gives our engine one row per set of weights and decoder
(a candidate beside the shipped model, in one run; rows are named by model version).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

from bench.machine import describe
from bench.weights_option import add_weights_dir_option, chosen_weights_dirs

REPO = Path(__file__).resolve().parents[1]


COLUMNS = ["word_f1_ci", "word_f1_cs", "word_precision_ci", "word_recall_ci", "page_cer", "line_exact_ci",
           "line_similarity", "key_f1", "key_company_f1", "key_address_f1", "key_total_f1", "key_date_f1",
           "seconds_mean", "seconds_p50", "seconds_p95"]


def results_table(rows: dict[str, dict[str, float]]) -> list[str]:
    """A markdown table of the systems' metrics: a column where any system has it, "—" where
    one has not (the peers find no key fields), pages/s against the first system."""
    columns = [c for c in COLUMNS if any(c in r for r in rows.values())]
    lines = ["| system | " + " | ".join(columns) + " | pages/s vs first |", "|---" * (len(columns) + 2) + "|"]
    base = next(iter(rows.values()))["seconds_mean"]
    for name, row in rows.items():
        cells = [f"{row[c]:.3f}" if c in row else "—" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {base / row['seconds_mean']:.2f}x |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--fold", choices=["val", "all", "heldout"], default="val",
                        help="heldout: the receipts of every split in neither training nor the fold "
                             "(the validation vendors' other receipts, where decoding settings are chosen)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--systems", default="billstream,rapidocr,tesseract")
    parser.add_argument("--backend", default="torch", help="billstream backend: torch, onnx, onnx-int8")
    parser.add_argument("--decoders", default="beam,greedy", help="billstream decoders, one row each")
    parser.add_argument("--device", default="cpu", help="billstream on cpu or cuda (backend torch)")
    parser.add_argument("--precisions", default="fp32", help="fp32,fp16: one row each (fp16 on cuda only)")
    parser.add_argument("--word-check", default="on", help="on,off: one beam row each (the lexicon check after the beam)")
    parser.add_argument("--line-floor", default="on", help="on,off: one row each (lines read below the manifest's "
                                                            "confidence floor dropped)")
    parser.add_argument("--no-line-crops", action="store_true", help="skip the GT line-crop accuracy (faster)")
    add_weights_dir_option(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    weights_dirs = chosen_weights_dirs(parser, args.weights_dir)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.evaluation import EngineReader, Reader, evaluate
    from models.training.receipts import held_out_receipts, load_all, load_receipts, read_val_fold

    receipts = load_receipts(args.split)
    if args.fold == "heldout":
        receipts = held_out_receipts(load_all(), read_val_fold())
    elif args.fold == "val":
        fold = read_val_fold()
        receipts = [r for r in receipts if r.name in fold]
    readers: list[Reader] = []
    for name in args.systems.split(","):
        if name == "billstream":
            for weights_dir in weights_dirs:
                for decoder in args.decoders.split(","):
                    for precision in args.precisions.split(","):
                        if precision not in ("fp32", "fp16") or (precision == "fp16" and args.device == "cpu"):
                            parser.error(f"precision {precision}: fp32, or fp16 with --device cuda")
                        checks = args.word_check.split(",") if decoder == "beam" else ["on"]
                        for check, floor in itertools.product(checks, args.line_floor.split(",")):
                            if check not in ("on", "off") or floor not in ("on", "off"):
                                parser.error(f"--word-check {check} --line-floor {floor}: each on or off")
                            readers.append(EngineReader(OcrEngine.load(weights_dir, EngineOptions(
                                backend=args.backend, device=args.device, threads=args.threads, decoder=decoder,
                                half=precision == "fp16", word_check=check == "on", line_floor=floor == "on"))))
        elif name == "rapidocr":
            from bench.peers import RapidOcrReader

            readers.append(RapidOcrReader(args.threads))
        elif name == "tesseract":
            from bench.peers import TesseractReader

            readers.append(TesseractReader(args.threads))
        else:
            parser.error(f"unknown system {name}")
    rows = {}
    for reader in readers:
        def progress(n, total, label=reader.name):
            return print(f"\r{label}: {n}/{total}", end="", file=sys.stderr)
        rows[reader.name] = evaluate(reader, receipts, line_crops=not args.no_line_crops, progress=progress)
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(describe())
    source = "all splits" if args.fold == "heldout" else args.split.name
    print(f"inputs: {len(receipts)} receipts of {source} (fold {args.fold}), {args.threads} CPU threads each")
    print("\n".join(results_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
