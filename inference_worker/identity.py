"""A worker's default identity: the lowest free slot on its host, stable across restarts.

A worker's instance id names its transactional id. A restarted worker with the same id
aborts its predecessor's open transaction at once (``init_transactions``); with a fresh id
the read_committed readers of those partitions wait for the transaction timeout instead.
(Its group membership stays dynamic: a static member that rejoins is handed its old
assignment without a rebalance, and partitions left between the two phases of a
cooperative rebalance then stayed with nobody, across restarts.) So
workers take slot ``<host>-w<N>``: the lowest N whose lock file no live process holds. A
killed worker's lock goes with its process, so its restart takes the same slot, while
workers running side by side on one host get different slots without any flag.
"""
from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

from billstream_core.errors import SettingsError

MAX_SLOTS = 256


class WorkerSlot:
    """A held slot; the lock lasts as long as this process (or until :meth:`release`)."""

    def __init__(self, instance_id: str, fd: int | None) -> None:
        self.instance_id = instance_id
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def default_slot_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"billstream-worker-slots-{os.getuid()}"


def claim_slot(slot_dir: Path | None = None, host: str | None = None) -> WorkerSlot:
    """The lowest free slot of this host, locked for the life of the process."""
    directory = slot_dir or default_slot_dir()
    name = host or socket.gethostname()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot create the worker slot directory {directory}: {exc.strerror}; "
                            "pass --instance-id instead") from exc
    for number in range(MAX_SLOTS):
        path = directory / f"{name}-w{number}.lock"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SettingsError(f"cannot open the worker slot {path}: {exc.strerror}; pass --instance-id instead") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return WorkerSlot(f"{name}-w{number}", fd)
    raise SettingsError(f"all {MAX_SLOTS} worker slots of {name} in {directory} are taken; pass --instance-id")


def explicit_slot(instance_id: str) -> WorkerSlot:
    """An id the operator chose (a pod name, a systemd instance): nothing to lock."""
    return WorkerSlot(instance_id, None)
