"""Engine speed on a GPU: pages/s and lines/s with pages batched together (their line crops
recognised in shared batches), and where the time goes per stage.

Pages are decoded once up front (decode is CPU work the workers do while the GPU runs the
previous batch; its cost per page is printed on its own line).

    python -m bench.engine_gpu [--split DIR] [--pages 64] [--batches 1,8,32]
        [--configs fp16+greedy,fp16+auto,fp32+greedy] [--json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.machine import describe

if TYPE_CHECKING:
    from models.engine.predictor import OcrEngine

REPO = Path(__file__).resolve().parents[1]
STAGES = ("preprocess_ms", "detect_ms", "recognize_ms")


def measure(engine: OcrEngine, pages: list[np.ndarray], batch: int) -> dict[str, float]:
    import torch

    engine.read_pages(pages[:batch])  # warm-up: CUDA kernels, cuDNN plans for these shapes
    torch.cuda.synchronize()
    stages = dict.fromkeys(STAGES, 0.0)
    lines, started = 0, time.perf_counter()
    for start in range(0, len(pages), batch):
        for result in engine.read_pages(pages[start:start + batch]):
            lines += len(result.lines)
            for stage in STAGES:
                stages[stage] += result.timings_ms.get(stage, 0.0)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {"pages_per_s": len(pages) / elapsed, "lines_per_s": lines / elapsed,
            "ms_per_page": 1000 * elapsed / len(pages)} | {stage: value / len(pages) for stage, value in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--pages", type=int, default=64, help="validation receipts, repeated to this many pages")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--configs", default="fp16+greedy,fp16+auto,fp32+greedy",
                        help="precision+decoder (decoder auto = beam search with the shipped LM)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench.engine_gpu: no CUDA device visible", flush=True)
        return 2
    from billstream_core.settings import LimitSettings
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.intake import decode_image
    from models.training.receipts import read_val_fold

    names = sorted(read_val_fold())
    datas = [(args.split / f"{names[i % len(names)]}.jpg").read_bytes() for i in range(args.pages)]
    started = time.perf_counter()
    pages = [decode_image(data, LimitSettings()).gray for data in datas]
    decode_ms = 1000 * (time.perf_counter() - started) / len(pages)

    rows = []
    for config in args.configs.split(","):
        precision, _, decoder = config.partition("+")
        engine = OcrEngine.load(options=EngineOptions(backend="torch", device="cuda", half=precision == "fp16",
                                                      decoder=decoder or "auto"))
        for batch in [int(b) for b in args.batches.split(",")]:
            rows.append({"config": config, "batch": batch} | measure(engine, pages, batch))
    if args.json:
        print(json.dumps({"decode_ms_per_page": decode_ms, "rows": rows}))
        return 0
    print(describe())
    print(f"inputs: {len(pages)} pages ({len(names)} validation-fold receipts from {args.split.name}, repeated); "
          f"decode (CPU, one thread, not in the table): {decode_ms:.1f} ms/page")
    print("| config | pages/batch | pages/s | lines/s | ms/page | preprocess ms | detect ms | recognize ms |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['config']} | {row['batch']} | {row['pages_per_s']:.1f} | {row['lines_per_s']:.0f} | "
              f"{row['ms_per_page']:.1f} | {row['preprocess_ms']:.1f} | {row['detect_ms']:.1f} | "
              f"{row['recognize_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
