"""One MinIO server on loopback with a data directory and credentials from settings."""
from __future__ import annotations

import urllib.request
from pathlib import Path

from billstream_core.settings import StorageSettings
from infra.processes import ManagedProcess
from infra.toolchain import minio_binary


class LocalMinio:
    def __init__(self, *, cache_dir: Path, state_dir: Path, storage: StorageSettings, console_port: int) -> None:
        self.cache_dir = cache_dir
        self.data_dir = state_dir / "minio" / "data"
        self.storage = storage
        self.console_port = console_port
        self.process = ManagedProcess("minio", state_dir)

    def live(self) -> bool:
        """MinIO's liveness endpoint answers."""
        host, port = self.storage.host_port
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/minio/health/live", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:  # URLError is an OSError
            return False

    def prepare(self) -> Path:
        return minio_binary(self.cache_dir)

    def start(self) -> None:
        binary = self.prepare()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        host, port = self.storage.host_port
        self.process.start(
            [str(binary), "server", str(self.data_dir), "--quiet",
             "--address", f"{host}:{port}", "--console-address", f"{host}:{self.console_port}"],
            env={
                "MINIO_ROOT_USER": self.storage.access_key.get_secret_value(),
                "MINIO_ROOT_PASSWORD": self.storage.secret_key.get_secret_value(),
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
            },
        )
