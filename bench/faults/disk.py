"""A MinIO whose data directory is a small tmpfs that can be filled and freed on demand:
the storage-full fault, for the fault suite and the tests."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.stacks import free_port
from billstream_core.errors import InfraError
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore
from infra.minio_local import LocalMinio
from infra.stack import wait_until

FILLER = "filler"  # beside MinIO's data directory, on the same tmpfs


class SmallDisk:
    """MinIO on its own tmpfs of ``size_mb``; :attr:`settings` are ``base``'s with this
    MinIO as the object store (same credentials and bucket)."""

    def __init__(self, base: Settings, mount: Path, size_mb: int) -> None:
        self.mount, self.size_mb = mount, size_mb
        storage = base.storage.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}"})
        self.settings = base.model_copy(update={"storage": storage})
        self.minio = LocalMinio(cache_dir=base.infra.cache_dir, state_dir=mount, storage=storage,
                                console_port=free_port())

    def start(self, timeout_s: float = 60.0) -> None:
        self.minio.start()
        wait_until(self.minio.live, "MinIO on the tmpfs", self.minio.process, time.monotonic() + timeout_s, timeout_s)
        ObjectStore(self.settings.storage).ensure_bucket()

    def fill(self) -> None:
        """Write a file until the tmpfs has no byte left (in ever smaller blocks)."""
        fd = os.open(self.mount / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = 1 << 20
            while size >= 512:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:  # ENOSPC: try a smaller block
                    size //= 2
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.mount / FILLER).unlink(missing_ok=True)

    def stop(self) -> None:
        self.minio.process.stop()


@contextmanager
def small_disk(base: Settings, size_mb: int = 64) -> Iterator[SmallDisk]:
    """Mounts the tmpfs (root only: the one privilege the case needs), starts MinIO on it,
    and takes both down afterwards."""
    if os.geteuid() != 0:
        raise InfraError("the storage-full fault mounts a small tmpfs for MinIO: run it as root")
    with tempfile.TemporaryDirectory(prefix="billstream-small-disk-") as temporary:
        mount = Path(temporary)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise InfraError(f"mounting a tmpfs for the storage-full fault failed: {result.stderr.strip()}")
        disk = SmallDisk(base, mount, size_mb)
        try:
            disk.start()
            yield disk
        finally:
            disk.stop()
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
