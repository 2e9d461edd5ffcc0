"""The project's own components (stream app, workers) as child processes, for the demo and
the benchmarks: started with `billstream …`, logged to files, stopped SIGTERM-then-SIGKILL."""
from __future__ import annotations

import os
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


class ChildProcess:
    """One ``billstream`` subcommand as a child process, logging to a file; stopped with
    SIGTERM (a clean stop: the worker finishes its batch), then SIGKILL after a grace time."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.process = spawn_cli(args, log_path, env)

    def ask_to_stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 30) -> int:
        """The exit code, after SIGKILL when the grace time ran out."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.ask_to_stop()
        return self.wait_stopped(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would; reaped."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    close = kill


class ComponentProcesses:
    """The processes started here, by name (starting a name again replaces its process);
    stopped in reverse order."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: dict[str, ChildProcess] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        """``env`` adds variables for this child only."""
        child_env = {**os.environ, **(self.env or {}), **env} if env else self.env
        self.procs[name] = ChildProcess(list(args), self.log_dir / f"{name}.log", child_env)
        return self.procs[name]

    def check(self) -> None:
        for name, child in self.procs.items():
            if child.process.poll() is not None:
                raise BillstreamError(f"{name} exited with code {child.process.returncode}; see {child.log_path}")

    def stop(self) -> None:
        children = list(reversed(self.procs.values()))
        for child in children:  # all at once: each finishes its own work in parallel
            child.ask_to_stop()
        for child in children:
            child.wait_stopped(30)
        self.procs.clear()


def wait_ready(url: str, children: ComponentProcesses, timeout: float, *, path: str = "/ready",
               what: str = "the stream app") -> None:
    """Until ``url + path`` answers 200 (the stream app: its tables are recovered; 503 before)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        try:
            urllib.request.urlopen(f"{url}{path}", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise BillstreamError(f"{what} was not ready at {url} within {timeout:.0f}s")
