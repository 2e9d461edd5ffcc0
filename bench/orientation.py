"""Pages in any orientation: word F1 on the validation fold turned 0, 90, 180 and 270
degrees (no EXIF tag), and the engine's seconds on upright pages with and without the
orientation step, side by side in one run.

    python -m bench.orientation [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from bench.machine import describe

REPO = Path(__file__).resolve().parents[1]


class TurnedReader:
    """The engine reading each receipt turned ``degrees`` clockwise, as a new image file."""

    def __init__(self, engine, degrees: int) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.degrees = engine, degrees
        self.name = f"turned {degrees}"
        self.turned: list[int] = []

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]:
        from models.engine.orientation import turn

        page = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert page is not None
        ok, encoded = cv2.imencode(".png", turn(page, self.degrees))
        result = self.engine.read_image_bytes(encoded.tobytes())
        self.turned.append(result.rotation)
        return [(line.text, line.quad) for line in result.lines]

    def read_crops(self, crops: list[np.ndarray]) -> list[str]:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from models.engine.predictor import EngineOptions, OcrEngine
    from models.evaluation import evaluate
    from models.training.receipts import load_receipts, read_val_fold

    fold = read_val_fold()
    receipts = [r for r in load_receipts(args.split) if r.name in fold]
    engine = OcrEngine.load(options=EngineOptions(backend="onnx-int8", threads=args.threads))
    plain = OcrEngine.load(options=EngineOptions(backend="onnx-int8", threads=args.threads, orientation=False))
    print(describe())
    print(f"inputs: {len(receipts)} validation-fold receipts, each written turned as a PNG; onnx-int8, beam, "
          f"{args.threads} threads")
    print("| pages turned | word F1 | page CER | turned back as expected | vs upright |")
    print("|---|---|---|---|---|")
    upright_f1 = 0.0
    for degrees in (0, 90, 180, 270):
        reader = TurnedReader(engine, degrees)
        row = evaluate(reader, receipts, line_crops=False)  # type: ignore[arg-type]
        upright_f1 = upright_f1 or row["word_f1_ci"]
        back = sum((d + degrees) % 360 == 0 for d in reader.turned)
        print(f"| {degrees} | {row['word_f1_ci']:.3f} | {row['page_cer']:.3f} | {back}/{len(receipts)} | "
              f"{row['word_f1_ci'] - upright_f1:+.3f} |")
    datas = [r.image_path.read_bytes() for r in receipts]
    print("| upright pages | s/page | vs without |")
    print("|---|---|---|")
    seconds = {}
    for label, which in (("without the orientation step", plain), ("with the orientation step", engine)):
        which.read_image_bytes(datas[0])
        started = time.perf_counter()
        for data in datas:
            which.read_image_bytes(data)
        seconds[label] = (time.perf_counter() - started) / len(datas)
    base = seconds["without the orientation step"]
    for label, value in seconds.items():
        print(f"| {label} | {value:.3f} | {value / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
