"""What both trainers share: the optimiser schedule and resumable epoch checkpoints.

Checkpoints are local training state (``runs/``), read back with ``weights_only=True`` so
loading one cannot execute code; shipped weights are ``.npz`` (see ``weights_io``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def one_cycle(model: nn.Module, lr: float, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.1)
    return optimizer, scheduler


def train_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, *, clip_norm: float | None = None) -> float:
    """Backward, optional gradient clipping, optimiser and schedule step; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    scheduler.step()
    return float(loss.item())


class EpochCheckpoints:
    def __init__(self, run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, device: str) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "last.pt"
        self.model, self.optimizer, self.scheduler, self.device = model, optimizer, scheduler, device

    def resume(self, metric: str) -> tuple[int, float]:
        """(first epoch to run, best metric so far); (0, -1) for a fresh run."""
        if not self.path.exists():
            return 0, -1.0
        state = torch.load(self.path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        print(f"resumed after epoch {state['epoch'] + 1} (best {metric} {state['best']:.4f})", flush=True)
        return int(state["epoch"]) + 1, float(state["best"])

    def save(self, epoch: int, best: float) -> None:
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "epoch": epoch, "best": best}, self.path)


def report_epoch(epoch: int, loss: float, started: float, metrics: dict[str, float]) -> float:
    """Print the epoch's JSON line (the training log); returns the minutes since ``started``."""
    import json
    import time

    minutes = (time.monotonic() - started) / 60
    print(json.dumps({"epoch": epoch + 1, "loss": round(loss, 4), "minutes": round(minutes, 1)} | metrics), flush=True)
    return minutes


def provenance(data: str, epoch: int, seed: int, device: str, minutes: float,
               metrics: dict[str, float]) -> dict[str, object]:
    """The manifest's training and metrics sections for a model exported at this epoch."""
    import platform

    return {
        "training": {"data": data, "epochs": epoch + 1, "seed": seed, "device": device,
                     "host": platform.processor() or platform.machine(), "minutes": round(minutes, 1)},
        "metrics": {"validation_fold": "models/data/val_fold.txt"} | {k: round(v, 4) for k, v in metrics.items()},
    }
