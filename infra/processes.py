"""Start, find and stop the processes we started, through pid files, never by name.

A pid file records the pid and the process start time (from /proc), so a pid recycled by
the OS for an unrelated process is never signalled.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime) counted after the ")" that closes the command name
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


@dataclass(frozen=True)
class RunningProcess:
    name: str
    pid: int
    log_path: Path


class ManagedProcess:
    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.pid_path = state_dir / f"{name}.pid"
        self.log_path = state_dir / "logs" / f"{name}.log"

    def running(self) -> RunningProcess | None:
        try:
            record = json.loads(self.pid_path.read_text())
        except (OSError, ValueError):
            return None
        pid, ticks = int(record["pid"]), int(record["start_ticks"])
        if _start_ticks(pid) != ticks:
            self.pid_path.unlink(missing_ok=True)  # stale: that process is gone
            return None
        return RunningProcess(self.name, pid, self.log_path)

    def start(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> RunningProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )
        ticks = _start_ticks(process.pid)
        self.pid_path.write_text(json.dumps({"pid": process.pid, "start_ticks": ticks, "argv0": argv[0]}))
        return RunningProcess(self.name, process.pid, self.log_path)

    def exited_early(self) -> bool:
        return self.pid_path.exists() and self.running() is None

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL after the timeout; True when something stopped."""
        current = self.running()
        if current is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        self._signal(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _start_ticks(current.pid) is not None:
            _reap(current.pid)
            time.sleep(0.1)
        if _start_ticks(current.pid) is not None:
            self._signal(current.pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(current.pid)
        self.pid_path.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # started with start_new_session: pgid == pid
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    """Collect a zombie child of this process so it stops counting as running."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
