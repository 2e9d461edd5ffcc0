"""`python -m bench.worker_memory [--receipts 24] [--passes 3]`: a CPU worker's engine memory
(RSS) as it reads real receipts, with ONNX Runtime's memory arena on and off, each in a
fresh process, side by side in one run; and whether torch was imported at all.

Every engine call has new shapes (page sizes, width-batched lines); the arena keeps the
buffers of each, so with it a worker's memory climbs with the variety of what it has read.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


VARIANTS = {  # name → (arena, memory pattern)
    "ORT defaults (arena, memory pattern)": (True, True),
    "arena (shipped default)": (True, False),
    "no arena (BILLSTREAM_WORKER__MEMORY_ARENA=false)": (False, False),
}


def child(variant: str, paths: list[Path], passes: int) -> dict[str, object]:
    """Runs in its own process: the engine as a CPU worker loads it, one thread."""
    from models.engine.predictor import OcrEngine, onnx_export, serving_options
    from models.engine.runners import OnnxRunner

    arena, pattern = VARIANTS[variant]
    started = rss_mb()
    engine = OcrEngine.load(options=serving_options("onnx-int8", "cpu", 1, "auto", "off", memory_arena=arena))
    if pattern:  # the same files, with the memory pattern ONNX Runtime enables by default
        files = onnx_export(Path(REPO / "models" / "weights"))
        engine.detector = OnnxRunner(files["detector"], 1, memory_arena=arena, memory_pattern=True)
        engine.recognizer = OnnxRunner(files["recognizer_int8"], 1, memory_arena=arena, memory_pattern=True)
    loaded = rss_mb()
    after, seconds = [], []
    for _ in range(passes):
        t0 = time.perf_counter()
        for path in paths:
            engine.read_document_bytes(path.read_bytes())
        seconds.append(time.perf_counter() - t0)
        after.append(rss_mb())
    return {"variant": variant, "interpreter": started, "loaded": loaded, "after": after, "seconds": seconds,
            "torch": "torch" in sys.modules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=Path, default=REPO.parent / "shared" / "data" / "receipts-dev")
    parser.add_argument("--receipts", type=int, default=24)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--child", choices=tuple(VARIANTS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = sorted(args.split.glob("*.jpg"))[:args.receipts]
    if not paths:
        raise SystemExit(f"no receipts in {args.split}")
    if args.child:
        print(json.dumps(child(args.child, paths, args.passes)))
        return 0
    rows = []
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, "-m", "bench.worker_memory", "--child", variant, "--split", str(args.split),
                              "--receipts", str(args.receipts), "--passes", str(args.passes)],
                             capture_output=True, text=True, cwd=REPO, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(describe())
    print(f"{len(paths)} receipts of {args.split.name}, read {args.passes} times over in one process; one thread\n")
    passes = " | ".join(f"RSS after pass {n + 1} MB" for n in range(args.passes))
    print(f"| ONNX Runtime memory | torch imported | RSS loaded MB | {passes} | s per pass |")
    print("|---|---|---|" + "---|" * args.passes + "---|")
    for row in rows:
        after = " | ".join(f"{v:.0f}" for v in row["after"])
        seconds = "/".join(f"{v:.1f}" for v in row["seconds"])
        print(f"| {row['variant']} | {'yes' if row['torch'] else 'no'} "
              f"| {row['loaded']:.0f} | {after} | {seconds} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
