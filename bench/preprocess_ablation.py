"""Which page preprocessing steps help: the engine with each switch (CLAHE, denoise, deskew)
on its own and all together, against none, on the same receipts in one run.

Measured on training receipts by default (a fixed sample), so that choosing the switches
is not tuning on the validation fold.

    python -m bench.preprocess_ablation [--receipts 30] [--threads 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, default=30, help="training receipts sampled (seed 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from bench.machine import describe
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.evaluation import EngineReader, evaluate
    from models.preprocess import PreprocessConfig
    from models.training.receipts import load_all, read_val_fold, split_train_val

    train, _ = split_train_val(load_all(), read_val_fold())
    receipts = random.Random(0).sample(train, min(args.receipts, len(train)))
    configs = {"none": PreprocessConfig(), "clahe": PreprocessConfig(clahe=True),
               "denoise": PreprocessConfig(denoise=True), "deskew": PreprocessConfig(deskew=True),
               "all three": PreprocessConfig(clahe=True, denoise=True, deskew=True)}
    rows = {}
    for name, config in configs.items():
        print(f"preprocessing: {name}…", file=sys.stderr, flush=True)
        engine = OcrEngine.load(options=EngineOptions(backend="onnx-int8", threads=args.threads, preprocess=config))
        rows[name] = evaluate(EngineReader(engine), receipts, line_crops=False)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(describe())
    print(f"inputs: {len(receipts)} training receipts (seed 0), onnx-int8, {args.threads} threads, shipped weights")
    print("| preprocessing | word_f1_ci | page_cer | s/page | word F1 vs none |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['word_f1_ci']:.3f} | {row['page_cer']:.3f} | {row['seconds_mean']:.3f} | "
              f"{row['word_f1_ci'] - rows['none']['word_f1_ci']:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
