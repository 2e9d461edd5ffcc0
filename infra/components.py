"""The project's own components (stream app, workers) as child processes, for the demo and
the benchmarks: started with `billstream …`, logged to files, stopped SIGTERM-then-SIGKILL."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from billstream_core.errors import BillstreamError


def spawn_cli(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``billstream ARGS`` as a child in its own session, stdout and stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "billstream_cli.main", *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)


class ComponentProcesses:
    """The processes started here; stopped in reverse order."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> None:
        self.procs.append((name, spawn_cli(list(args), self.log_dir / f"{name}.log", self.env)))

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise BillstreamError(f"{name} exited with code {proc.returncode}; see {self.log_dir / name}.log")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def wait_ready(url: str, children: ComponentProcesses, timeout: float) -> None:
    """Until the stream app says its tables are recovered (503 before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        try:
            urllib.request.urlopen(f"{url}/ready", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise BillstreamError(f"the stream app was not ready at {url} within {timeout:.0f}s")
