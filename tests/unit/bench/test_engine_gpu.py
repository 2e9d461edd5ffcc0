"""The GPU bench, run on the CPU: a lent GPU's few minutes go to measuring, not to a broken
script. The table must come out with a row per process count and pages per detector call."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def bench_rows(*options: str) -> list[dict[str, Any]]:
    """The bench on the CPU (one thread), two pages a batch: its JSON rows."""
    command = [sys.executable, "-m", "bench.engine_gpu", "--device", "cpu", "--pages", "2", "--batches", "2",
               *options, "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
    return rows


def test_the_gpu_bench_runs_batched_detection_and_shared_processes_on_the_cpu() -> None:
    rows = bench_rows("--detect-batches", "1,2", "--procs", "1,2", "--configs", "fp32+greedy")
    assert [(r["procs"], r["detect_batch"]) for r in rows] == [(1, 1), (2, 1), (1, 2), (2, 2)]
    assert all(r["pages_per_s"] > 0 and r["lines_per_s"] > 0 for r in rows)
    alone = [r for r in rows if r["procs"] == 1]
    assert alone[0]["lines"] == alone[1]["lines"] > 0  # the same pages read alike page by page or in one tensor


def test_the_gpu_bench_puts_the_python_beam_beside_the_compiled_one() -> None:
    rows = bench_rows("--detect-batches", "1", "--procs", "1", "--configs", "fp32+auto,fp32+auto-python")
    assert [r["config"] for r in rows] == ["fp32+auto", "fp32+auto-python"]
    assert rows[0]["lines"] == rows[1]["lines"] > 0
