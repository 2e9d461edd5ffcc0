"""Backends that run one network: numpy batch in, numpy out. The engine does not care which.
The torch one is in :mod:`models.engine.torch_runner`: serving on ONNX never imports torch."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

import numpy as np


class Runner(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class OnnxRunner:
    def __init__(self, path: Path, threads: int | None = None, slot: AbstractContextManager[object] | None = None,
                 *, memory_arena: bool = True, memory_pattern: bool = False) -> None:
        import onnxruntime as ort

        self.slot = slot if slot is not None else nullcontext()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Every call has new shapes (pages and width-batched lines). The arena keeps buffers
        # for the largest seen: a worker's RSS rises from ~180 MB to ~870 MB over the first
        # receipts, then stays; without it ~480 MB, ~15% slower. The memory pattern, planned
        # per shape, added ~220 MB for no speed (bench/worker_memory.py): always off.
        options.enable_cpu_mem_arena = memory_arena
        options.enable_mem_pattern = memory_pattern
        # idle pool threads sleep instead of spinning: between the net's calls the engine runs
        # Python (box post-processing, decoding), and in a worker the fetch/decode thread and
        # Kafka need those cores (measured: same pages/s alone, ~15% less CPU)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = batch.astype(np.float32, copy=False)
        with self.slot:
            return self.session.run(None, {self.input_name: batch})[0]  # type: ignore[no-any-return]
