"""One network run at a time on a set of cores, across the worker processes of a host.

Each worker runs its engine with a thread per core. Two workers on the same cores that run
at once put twice as many threads on them, and each run then takes more than twice as
long (the threads of one call wait for a descheduled straggler), so under a steady load
the next bills overlap too and latency runs away. A whole-file lock (``flock``) around
each network call makes them take turns, while the Python steps between calls (box
post-processing, beam search) still overlap the other worker's call. The kernel drops the
lock with its process: a killed worker never leaves it held.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from billstream_core.errors import SettingsError


class CpuSlot:
    """A host-wide mutex on ``path``; also a mutex between this process's threads (``flock``
    is held per open file, so a second thread on the same descriptor would not wait)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:  # read-only is enough to flock; O_NOFOLLOW: a planted symlink in a shared temp dir is refused
            self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SettingsError(f"cannot open the CPU slot's lock file {path}: {exc.strerror}; set "
                                "BILLSTREAM_WORKER__CPU_SLOT to another path, or to off") from exc
        self._threads = threading.Lock()

    def __enter__(self) -> CpuSlot:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        os.close(self._fd)


def cpu_set_name(cpus: set[int]) -> str:
    """``{0, 1, 2, 5}`` → ``"0-2,5"``: the cores as ``taskset`` writes them."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def default_slot_path() -> Path:
    """One lock per set of cores: workers pinned to disjoint cores do not wait on each other."""
    return Path(tempfile.gettempdir()) / f"billstream-cpu-{cpu_set_name(os.sched_getaffinity(0))}.lock"
