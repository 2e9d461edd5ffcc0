"""One epoch of recognizer batches: the real crops in width groups, each batch topped up with
synthetic lines rendered fresh for the epoch; each batch a small job that a worker process
can build.

Every batch mixes real and synthetic lines in the epoch's proportion: batches of one kind
alone pull the BatchNorm running statistics towards whichever kind came last, and the
validation score swings from epoch to epoch (seen: ±0.05 line exact).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.recognition.charset import Charset
from models.training.recognition_data import WIDTH_JITTER, Batch, LineSample, pack, prepare, width_groups
from models.training.synthetic_lines import synthetic_samples


@dataclass(frozen=True)
class BatchJob:
    seed: int
    real: tuple[int, ...]  # indices of real crops
    synthetic: int  # lines to render


class LineBatches:
    def __init__(self, real: list[LineSample], charset: Charset, *, batch_size: int, synthetic: int,
                 fonts: Sequence[Path], seed: int, height: int = 32, max_width: int = 1024,
                 width_jitter: tuple[float, float] = WIDTH_JITTER) -> None:
        self.real, self.charset, self.batch_size, self.synthetic = real, charset, batch_size, synthetic
        self.fonts, self.seed, self.height, self.max_width = list(fonts), seed, height, max_width
        self.width_jitter = width_jitter
        self.transcripts = [s.text for s in real]

    def _real_per_batch(self) -> int:
        total = len(self.real) + self.synthetic
        return max(1, round(self.batch_size * len(self.real) / total)) if self.real else 0

    def steps(self) -> int:
        per_batch = self._real_per_batch()
        return -(-len(self.real) // per_batch) if per_batch else -(-self.synthetic // self.batch_size)

    def jobs(self, epoch: int) -> list[BatchJob]:
        """The epoch's batches in training order (the same for the same seed and epoch)."""
        rng = random.Random(self.seed * 1000 + epoch)
        base = (self.seed * 1000 + epoch) * 100_000
        per_batch = self._real_per_batch()
        groups = width_groups(self.real, per_batch, rng) if per_batch else [[] for _ in range(self.steps())]
        share, extra = divmod(self.synthetic, len(groups))
        return [BatchJob(base + i, tuple(group), share + (i < extra)) for i, group in enumerate(groups)]

    def build(self, job: BatchJob) -> Batch:
        rng = random.Random(job.seed)
        chosen = [self.real[i] for i in job.real]
        if job.synthetic:
            chosen += synthetic_samples(job.synthetic, self.transcripts, self.charset, seed=job.seed, fonts=self.fonts)
        images = [prepare(sample, self.height, self.max_width, rng, self.width_jitter) for sample in chosen]
        return pack(images, [sample.text for sample in chosen], self.charset, self.height)
