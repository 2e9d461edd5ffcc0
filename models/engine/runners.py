"""Backends that run one network: numpy batch in, numpy out. The engine does not care which."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


class Runner(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    def __init__(self, module: torch.nn.Module, device: str = "cpu", half: bool = False,
                 slot: AbstractContextManager[object] | None = None) -> None:
        self.device = device
        self.slot = slot if slot is not None and device == "cpu" else nullcontext()  # a GPU queues on its own
        self.half = half and device.startswith("cuda")
        self.module = module.eval().to(device)
        if self.half:
            self.module = self.module.half()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self.slot:
            tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
            tensor = tensor.half() if self.half else tensor
            return self.module(tensor).float().cpu().numpy()


class OnnxRunner:
    def __init__(self, path: Path, threads: int | None = None, slot: AbstractContextManager[object] | None = None) -> None:
        import onnxruntime as ort

        self.slot = slot if slot is not None else nullcontext()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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
