"""Which page preprocessing steps help: the engine with each switch (CLAHE, denoise, Hough
deskew) on its own and all together, and with levelling from its own boxes, against none,
on the same receipts in one run.

Measured on training receipts by default (a fixed sample), so that choosing the switches
is not tuning on the validation fold. ``--skew`` turns every page by these small angles
first (counter-clockwise, degrees; the canvas grows so that nothing is cut): whether
deskewing earns its cost on pages that are skewed.

    python -m bench.preprocess_ablation [--receipts 30] [--threads 2] [--json]
    python -m bench.preprocess_ablation --skew 0 3 -5 --only none deskew
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys

import cv2
import numpy as np


class SkewedReader:
    """A reader of each page turned ``angle`` degrees counter-clockwise, on a grown white canvas."""

    def __init__(self, reader, angle: float) -> None:  # type: ignore[no-untyped-def]
        self.reader, self.angle = reader, angle
        self.name = f"{reader.name}, skewed {angle:+g}"

    def _skewed(self, data: bytes) -> bytes:
        from models.engine.skew import level_page

        page = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert page is not None
        turned, _ = level_page(page, -self.angle)  # level_page turns clockwise
        return cv2.imencode(".png", turned)[1].tobytes()

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]:
        return self.reader.read_page(self._skewed(data))

    def read_page_fields(self, data: bytes) -> tuple[list[tuple[str, np.ndarray]], dict[str, str]]:
        return self.reader.read_page_fields(self._skewed(data))  # type: ignore[no-any-return]

    def read_crops(self, crops: list[np.ndarray]) -> list[str]:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, default=30, help="training receipts sampled (seed 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skew", type=float, nargs="+", default=[0.0],
                        help="degrees counter-clockwise each page is turned first, one run per angle")
    parser.add_argument("--only", nargs="+", help="rows to run: none, clahe, denoise, deskew, all three, level "
                                                  "(the engine's levelling from its boxes; the others run without it)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from bench.machine import describe
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.evaluation import EngineReader, evaluate
    from models.preprocess import PreprocessConfig
    from models.training.receipts import load_all, read_val_fold, split_train_val

    train, _ = split_train_val(load_all(), read_val_fold())
    receipts = random.Random(0).sample(train, min(args.receipts, len(train)))
    configs = {name: (config, False) for name, config in (
        ("none", PreprocessConfig()), ("clahe", PreprocessConfig(clahe=True)),
        ("denoise", PreprocessConfig(denoise=True)), ("deskew", PreprocessConfig(deskew=True)),
        ("all three", PreprocessConfig(clahe=True, denoise=True, deskew=True)))}
    configs["level"] = (PreprocessConfig(), True)  # the shipped default
    if args.only:
        configs = {name: config for name, config in configs.items() if name in args.only}
    rows: dict[str, dict[str, float]] = {}
    for name, (config, level) in configs.items():
        engine = OcrEngine.load(options=EngineOptions(backend="onnx-int8", threads=args.threads, preprocess=config,
                                                      level=level))
        for angle in args.skew:
            label = name if args.skew == [0.0] else f"{name}, skewed {angle:+g}"
            print(f"preprocessing: {label}…", file=sys.stderr, flush=True)
            reader = EngineReader(engine) if angle == 0 else SkewedReader(EngineReader(engine), angle)
            rows[label] = evaluate(reader, receipts, line_crops=False)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(describe())
    print(f"inputs: {len(receipts)} training receipts (seed 0), onnx-int8, {args.threads} threads, shipped weights")
    first = next(iter(rows.values()))
    print("| preprocessing | word_f1_ci | page_cer | s/page | word F1 vs the first row |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['word_f1_ci']:.3f} | {row['page_cer']:.3f} | {row['seconds_mean']:.3f} | "
              f"{row['word_f1_ci'] - first['word_f1_ci']:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
