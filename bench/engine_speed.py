"""Engine speed on CPU: pages/s and lines/s for torch eager, ONNX Runtime and int8, at 1 and
2 threads, beside RapidOCR's pages/s on the same images in the same run. Each configuration
runs in its own process (threads pinned, peak RSS measured there).

    python -m bench.engine_speed [--split DIR] [--pages 20] [--threads 1,2]
        [--configs torch,onnx,onnx-int8,rapidocr] [--weights-dir DIR ...] [--json]

``--weights-dir`` more than once runs each engine configuration on each set of weights (a
candidate beside the shipped model, in one run).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import describe
from bench.weights_option import add_weights_dir_option, chosen_weights_dirs

REPO = Path(__file__).resolve().parents[1]


def measure(config: str, threads: int, images: list[Path], weights_dir: Path) -> dict[str, float]:
    """Runs inside the child process: load once, warm up, then time decode + OCR per page."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    datas = [p.read_bytes() for p in images]
    if config == "rapidocr":
        from bench.peers import RapidOcrReader

        reader = RapidOcrReader(threads)
        def run(data):
            return len(reader.read_page(data))
    else:
        from models.engine.predictor import EngineOptions, OcrEngine

        backend, _, decoder = config.partition("+")  # e.g. onnx-int8+greedy
        engine = OcrEngine.load(weights_dir, EngineOptions(backend=backend, threads=threads, decoder=decoder or "auto"))
        def run(data):
            return len(engine.read_image_bytes(data).lines)
    run(datas[0])  # warm-up
    lines, started = 0, time.perf_counter()
    for data in datas:
        lines += run(data)
    elapsed = time.perf_counter() - started
    return {"pages_per_s": len(datas) / elapsed, "lines_per_s": lines / elapsed, "seconds_per_page": elapsed / len(datas),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--configs", default="torch,onnx,onnx-int8,onnx-int8+greedy,rapidocr",
                        help="backend[+decoder] (decoder auto = beam with the shipped LM) or rapidocr")
    add_weights_dir_option(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from models.manifest import model_version, read_manifest
    from models.training.receipts import read_val_fold

    def version_of(d):
        return model_version(read_manifest(d / "manifest.json"))[:17]  # detector.recognizer
    weights_dirs = chosen_weights_dirs(parser, args.weights_dir)

    fold = sorted(read_val_fold())[: args.pages]
    images = [args.split / f"{name}.jpg" for name in fold]
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), images, weights_dirs[0])))
        return 0
    configs = args.configs.split(",")
    runs: list[tuple[str, Path | None]] = [(config, d) for config in configs if config != "rapidocr" for d in weights_dirs]
    runs += [("rapidocr", None)] if "rapidocr" in configs else []  # our weights mean nothing to it
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for config, weights in runs:
            label = config if weights is None or len(weights_dirs) == 1 else f"{config} ({version_of(weights)})"
            print(f"running {label} at {threads} thread(s)…", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, "-m", "bench.engine_speed", "--split", str(args.split), "--pages",
                                   str(args.pages), "--weights-dir", str((weights or weights_dirs[0]).resolve()),
                                   "--child", config, str(threads)], capture_output=True, text=True,
                                  cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append({"config": label, "threads": threads} | json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows))
        return 0
    print(describe())
    print(f"inputs: {len(images)} validation-fold receipts from {args.split.name}; decode + OCR per page, model loaded")
    print("| config | threads | pages/s | lines/s | s/page | peak RSS MB | pages/s vs RapidOCR (same threads) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peer = next((r for r in rows if r["config"] == "rapidocr" and r["threads"] == row["threads"]), None)
        ratio = f"{row['pages_per_s'] / peer['pages_per_s']:.2f}x" if peer else "-"
        print(f"| {row['config']} | {row['threads']} | {row['pages_per_s']:.2f} | {row['lines_per_s']:.1f} | "
              f"{row['seconds_per_page']:.3f} | {row['peak_rss_mb']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
