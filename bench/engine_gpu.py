"""Engine speed on a GPU: pages/s and lines/s with pages batched together (their line crops
recognised in shared batches), and where the time goes per stage.

Pages are decoded once up front (decode is CPU work the workers do while the GPU runs the
previous batch; its cost per page is printed on its own line). ``--detect-batches`` sets how
many pages go to the detector as one padded tensor; ``--procs 4`` also runs four engine
processes sharing the GPU, started together, each on the largest page batch (their
pages/s is the sum over one wall clock). ``--device cpu`` runs the same code on the CPU, as
a check of the bench itself before GPU time is spent on it.

    python -m bench.engine_gpu [--split DIR] [--pages 64] [--batches 1,8,32] [--detect-batches 1,16] [--procs 1,4]
        [--configs fp16+greedy,fp16+auto,fp32+greedy] [--json]
        (fp16+auto-python: the beam search in Python instead of compiled)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.machine import describe

if TYPE_CHECKING:
    from models.engine.predictor import OcrEngine

REPO = Path(__file__).resolve().parents[1]
STAGES = ("preprocess_ms", "detect_ms", "recognize_ms")


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(engine: OcrEngine, pages: list[np.ndarray], batch: int) -> dict[str, float]:
    engine.read_pages(pages[:batch])  # warm-up: CUDA kernels, cuDNN plans for these shapes
    synchronize()
    stages = dict.fromkeys(STAGES, 0.0)
    lines, started, wall_start = 0, time.perf_counter(), time.time()
    for start in range(0, len(pages), batch):
        for result in engine.read_pages(pages[start:start + batch]):
            lines += len(result.lines)
            for stage in STAGES:
                stages[stage] += result.timings_ms.get(stage, 0.0)
    synchronize()
    elapsed = time.perf_counter() - started
    return {"pages_per_s": len(pages) / elapsed, "lines_per_s": lines / elapsed, "ms_per_page": 1000 * elapsed / len(pages),
            "pages": len(pages), "lines": lines, "wall_start": wall_start, "wall_end": time.time()
            } | {stage: value / len(pages) for stage, value in stages.items()}


def load_pages(split: Path, count: int) -> tuple[list[np.ndarray], float, int]:
    """``count`` decoded validation-fold pages (repeated), the decode ms per page, the receipt count."""
    from billstream_core.settings import LimitSettings
    from models.intake import decode_image
    from models.training.receipts import read_val_fold

    names = sorted(read_val_fold())
    datas = [(split / f"{names[i % len(names)]}.jpg").read_bytes() for i in range(count)]
    started = time.perf_counter()
    pages = [decode_image(data, LimitSettings()).gray for data in datas]
    return pages, 1000 * (time.perf_counter() - started) / len(pages), len(names)


def load_engine(config: str, detect_batch: int, device: str) -> OcrEngine:
    from models.engine.predictor import EngineOptions, OcrEngine

    precision, _, decoder = config.partition("+")
    decoder, _, flag = decoder.partition("-")  # python: the beam search in Python, beside the compiled one
    if flag not in ("", "python"):
        raise ValueError(f"unknown config {config!r}")
    return OcrEngine.load(options=EngineOptions(backend="torch", device=device, half=precision == "fp16",
                                                decoder=decoder or "auto", detect_batch=detect_batch,
                                                compiled_beam=flag != "python"))


def child(config: str, batch: int, detect_batch: int, device: str, split: Path, count: int, start_line: Path) -> int:
    """One of several engine processes sharing the GPU: warm up, say so, wait for the others, run."""
    import resource

    pages, _, _ = load_pages(split, count)
    engine = load_engine(config, detect_batch, device)
    engine.read_pages(pages[:batch])
    synchronize()
    (start_line / f"ready-{os.getpid()}").touch()
    while not (start_line / "go").exists():
        time.sleep(0.01)
    row = measure(engine, pages, batch)  # timed after its own warm-up, over the wall clock the others share
    print(json.dumps({key: row[key] for key in ("pages", "lines", "wall_start", "wall_end")}
                     | {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--pages", type=int, default=64, help="validation receipts, repeated to this many pages")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--detect-batches", default="1,16", help="pages per detector call (one padded tensor)")
    parser.add_argument("--procs", default="1", help="engine processes sharing the GPU at once, e.g. 1,4")
    parser.add_argument("--configs", default="fp16+greedy,fp16+auto,fp32+greedy",
                        help="precision+decoder (decoder auto = beam search with the shipped LM)")
    parser.add_argument("--device", default="cuda", help="cpu: check the bench without a GPU")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "BATCH", "DETECT_BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--start-line", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench.engine_gpu: no CUDA device visible (--device cpu checks the bench itself)", flush=True)
        return 2
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]), args.device, args.split, args.pages,
                     args.start_line)
    from bench.engine_speed import run_together

    pages, decode_ms, receipts = load_pages(args.split, args.pages)
    rows = []
    for config in args.configs.split(","):
        for detect_batch in [int(b) for b in args.detect_batches.split(",")]:
            engine = load_engine(config, detect_batch, args.device)
            for batch in [int(b) for b in args.batches.split(",")]:
                rows.append({"config": config, "batch": batch, "detect_batch": detect_batch, "procs": 1}
                            | measure(engine, pages, batch))
            del engine
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            for procs in [int(p) for p in args.procs.split(",") if int(p) > 1]:
                batch = max(int(b) for b in args.batches.split(","))
                command = [sys.executable, "-m", "bench.engine_gpu", "--split", str(args.split), "--pages",
                           str(args.pages), "--device", args.device, "--child", config, str(batch), str(detect_batch)]
                result = run_together(command, procs, dict(os.environ))
                if isinstance(result, str):
                    print(f"{procs} processes of {config} failed:\n{result}", file=sys.stderr)
                    return 1
                rows.append({"config": config, "batch": batch, "detect_batch": detect_batch, "procs": procs,
                             "pages_per_s": result["pages_per_s"], "lines_per_s": result["lines_per_s"],
                             "ms_per_page": 1000 / result["pages_per_s"]})
    if args.json:
        print(json.dumps({"decode_ms_per_page": decode_ms, "rows": rows}))
        return 0
    print(describe())
    print(f"inputs: {len(pages)} pages ({receipts} validation-fold receipts from {args.split.name}, repeated); "
          f"decode (CPU, one thread, not in the table): {decode_ms:.1f} ms/page")
    print("| config | processes | pages/batch | pages/detector call | pages/s | lines/s | ms/page | "
          "preprocess ms | detect ms | recognize ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        stages = " | ".join(f"{row[s]:.1f}" if s in row else "—" for s in STAGES)
        print(f"| {row['config']} | {row['procs']} | {row['batch']} | {row['detect_batch']} | {row['pages_per_s']:.1f} | "
              f"{row['lines_per_s']:.0f} | {row['ms_per_page']:.1f} | {stages} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
