"""The torch backend's runner (GPU, or CPU for tests and training checks)."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch


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
