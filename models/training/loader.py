"""Build training batches in worker processes while the model trains on the last ones.

A batch is described by a small job (indices, a seed) and built by a function of the job
alone, so the batches are the same with 0 or 16 workers. Workers are spawned once per run
(not forked: a child forked after the parent used OpenCV's thread pool can deadlock in its
first OpenCV call — seen here, in tests and on a GPU machine) and kept for every epoch;
each gets the build function (with its samples) once, at start.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import cv2
from torch.utils.data import DataLoader, Dataset, Sampler

Job = TypeVar("Job")
Built = TypeVar("Built")


class _Build(Dataset, Generic[Job, Built]):
    def __init__(self, build: Callable[[Job], Built]) -> None:
        self.build = build

    def __getitem__(self, job: Job) -> Built:  # the sampler hands out jobs, not indices
        return self.build(job)


class _CurrentJobs(Sampler, Generic[Job]):
    def __init__(self) -> None:
        self.jobs: Sequence[Job] = ()

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


def _as_built(item: Built) -> Built:
    return item


def _one_thread(_: int) -> None:
    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own pool would oversubscribe


class JobBuilder(Generic[Job, Built]):
    """``builder(jobs)`` yields ``build(job)`` for each job, in order: in this process
    (``workers`` 0), in ``workers`` spawned processes (``build`` must pickle: a module-level
    function or a bound method), or in threads (``threads``: builds that are OpenCV calls,
    which release the GIL)."""

    def __init__(self, build: Callable[[Job], Built], workers: int, *, threads: bool = False) -> None:
        self.build, self.workers, self.threads = build, workers, threads
        self._jobs: _CurrentJobs[Job] = _CurrentJobs()
        self._loader: DataLoader | None = None
        if workers > 0 and not threads:
            self._loader = DataLoader(_Build(build), sampler=self._jobs, batch_size=None, num_workers=workers,
                                      collate_fn=_as_built, worker_init_fn=_one_thread,
                                      multiprocessing_context="spawn", persistent_workers=True, prefetch_factor=4,
                                      timeout=600)  # a stuck worker fails the run instead of hanging it

    def __call__(self, jobs: Sequence[Job]) -> Iterator[Built]:
        if self._loader is not None:
            self._jobs.jobs = jobs
            yield from self._loader
        elif self.workers > 0:
            yield from _in_threads(jobs, self.build, self.workers)
        else:
            yield from map(self.build, jobs)


def _in_threads(jobs: Sequence[Job], build: Callable[[Job], Built], workers: int) -> Iterator[Built]:
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[Built]] = deque()
        upcoming = iter(jobs)
        for job in upcoming:
            pending.append(pool.submit(build, job))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.popleft().result()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(build, following))
            yield done
