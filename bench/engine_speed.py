"""Engine speed on CPU: pages/s and lines/s for torch eager, ONNX Runtime and int8, at 1 and
2 threads, beside RapidOCR's pages/s on the same images in the same run. Each configuration
runs in its own process (threads pinned, peak RSS measured there).

    python -m bench.engine_speed [--split DIR] [--pages 20] [--threads 1,2] [--procs 1,2]
        [--configs torch,onnx,onnx-int8,rapidocr] [--weights-dir DIR ...] [--json]
        (onnx-int8+greedy: greedy decoding; onnx-int8+beam-nowords: the beam without its word check;
        onnx-int8+beam-python: the beam search in Python instead of compiled)

``--procs 2`` also runs two processes of each configuration at once (each with ``threads``
threads, each reading all the pages, started together after their warm-up): what a machine
gives when it runs one worker a core. Its pages/s is all pages read over the wall time.

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
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.weights_option import add_weights_dir_option, chosen_weights_dirs

REPO = Path(__file__).resolve().parents[1]


def measure(config: str, threads: int, images: list[Path], weights_dir: Path, start_line: Path | None = None
            ) -> dict[str, float]:
    """Runs inside the child process: load once, warm up, then time decode + OCR per page
    (``start_line``: a folder where it says it is ready, then waits for ``go`` before timing)."""
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

        backend, _, decoder = config.partition("+")  # e.g. onnx-int8+greedy, onnx-int8+beam-nowords
        # nowords: the beam without its lexicon check; python: the beam search in Python, not compiled
        decoder, _, flag = decoder.partition("-")
        if flag not in ("", "nowords", "python"):
            raise ValueError(f"unknown config {config!r}")
        engine = OcrEngine.load(weights_dir, EngineOptions(backend=backend, threads=threads, decoder=decoder or "auto",
                                                           word_check=flag != "nowords",
                                                           compiled_beam=flag != "python"))
        def run(data):
            return len(engine.read_image_bytes(data).lines)
    run(datas[0])  # warm-up
    if start_line is not None:
        (start_line / f"ready-{os.getpid()}").touch()
        while not (start_line / "go").exists():
            time.sleep(0.01)
    lines, wall_start, started = 0, time.time(), time.perf_counter()
    for data in datas:
        lines += run(data)
    elapsed = time.perf_counter() - started
    return {"pages_per_s": len(datas) / elapsed, "lines_per_s": lines / elapsed, "seconds_per_page": elapsed / len(datas),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "pages": len(datas),
            "lines": lines, "wall_start": wall_start, "wall_end": time.time()}


def run_together(command: list[str], procs: int, env: dict[str, str]) -> dict[str, float] | str:
    """``procs`` children of ``command`` timed over the same wall clock; the error text if one failed."""
    with tempfile.TemporaryDirectory() as start_line:
        children = [subprocess.Popen(command + ["--start-line", start_line], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO, env=env) for _ in range(procs)]
        while len(list(Path(start_line).glob("ready-*"))) < procs and all(c.poll() is None for c in children):
            time.sleep(0.05)
        (Path(start_line) / "go").touch()
        outputs = [c.communicate() for c in children]
    if any(c.returncode != 0 for c in children):
        return "".join(err for _, err in outputs)[-2000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    wall = max(r["wall_end"] for r in results) - min(r["wall_start"] for r in results)
    pages, lines = sum(r["pages"] for r in results), sum(r["lines"] for r in results)
    return {"pages_per_s": pages / wall, "lines_per_s": lines / wall, "seconds_per_page": wall / pages * procs,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--configs", default="torch,onnx,onnx-int8,onnx-int8+greedy,rapidocr",
                        help="backend[+decoder] (decoder auto = beam with the shipped LM) or rapidocr")
    add_weights_dir_option(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--procs", default="1", help="processes of each configuration at once, e.g. 1,2")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--start-line", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from models.manifest import model_version, read_manifest
    from models.training.receipts import read_val_fold

    def version_of(d):
        return model_version(read_manifest(d / "manifest.json"))[:17]  # detector.recognizer
    weights_dirs = chosen_weights_dirs(parser, args.weights_dir)

    fold = sorted(read_val_fold())[: args.pages]
    images = [args.split / f"{name}.jpg" for name in fold]
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), images, weights_dirs[0], args.start_line)))
        return 0
    configs = args.configs.split(",")
    runs: list[tuple[str, Path | None]] = [(config, d) for config in configs if config != "rapidocr" for d in weights_dirs]
    runs += [("rapidocr", None)] if "rapidocr" in configs else []  # our weights mean nothing to it
    rows: list[dict[str, Any]] = []
    for procs in [int(p) for p in args.procs.split(",")]:
        for threads in [int(t) for t in args.threads.split(",")]:
            for config, weights in runs:
                label = config if weights is None or len(weights_dirs) == 1 else f"{config} ({version_of(weights)})"
                print(f"running {label}, {procs} process(es) x {threads} thread(s)…", file=sys.stderr, flush=True)
                command = [sys.executable, "-m", "bench.engine_speed", "--split", str(args.split), "--pages",
                           str(args.pages), "--weights-dir", str((weights or weights_dirs[0]).resolve()),
                           "--child", config, str(threads)]
                result = run_together(command, procs, {**os.environ, "OMP_NUM_THREADS": str(threads)})
                if isinstance(result, str):
                    print(result, file=sys.stderr)
                    return 1
                rows.append({"config": label, "procs": procs, "threads": threads} | result)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(describe())
    print(f"inputs: {len(images)} validation-fold receipts from {args.split.name}; decode + OCR per page, model loaded")
    print("| config | processes x threads | pages/s | lines/s | s/page | peak RSS MB | pages/s vs RapidOCR (same layout) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peer = next((r for r in rows if r["config"] == "rapidocr" and r["threads"] == row["threads"]
                     and r["procs"] == row["procs"]), None)
        ratio = f"{row['pages_per_s'] / peer['pages_per_s']:.2f}x" if peer else "-"
        print(f"| {row['config']} | {row['procs']} x {row['threads']} | {row['pages_per_s']:.2f} | "
              f"{row['lines_per_s']:.1f} | {row['seconds_per_page']:.3f} | {row['peak_rss_mb']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
