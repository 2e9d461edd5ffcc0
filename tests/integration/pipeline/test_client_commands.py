"""The client commands as a user runs them against a running pipeline: `submit`, `get` and
`results` (from the beginning, and `--follow` from the end), with their exit codes."""
from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from billstream_core.settings import Settings, settings_env
from producers.samples import render_bill
from tests.support.pipeline import ServiceProcess, WorkerProcess, isolated_settings, stop_all, wait_http

COMMAND = [sys.executable, "-m", "billstream_cli.main"]


def billstream(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **settings_env(settings)})


def get_until_done(settings: Settings, order: str, timeout: float = 180) -> tuple[list[int], dict[str, Any]]:
    """`billstream get ORDER --json` until it exits 0: the exit codes seen, and the result."""
    codes: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = billstream(settings, "get", order, "--json")
        codes.append(done.returncode)
        if done.returncode == 0:
            return codes, json.loads(done.stdout)
        time.sleep(1)
    raise AssertionError(f"{order} never done; exit codes {codes}")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Follower:
    """`billstream results --follow --json` as a child, its output lines on queues."""

    def __init__(self, settings: Settings) -> None:
        self.process = subprocess.Popen([*COMMAND, "results", "--follow", "--json"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **settings_env(settings)})
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line)

    def wait_for(self, lines: queue.Queue[str], accept: Any, timeout: float) -> list[str]:
        """Lines read until one satisfies ``accept`` (that one included)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if accept(line):
                return seen
        raise AssertionError(f"not seen in {timeout}s; exit {self.process.poll()}; lines {seen}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(10)


def test_submit_get_and_results_commands_on_a_running_pipeline(services: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(services)
    stream = ServiceProcess(settings, "stream", tmp_path, ["stream-app"])
    worker = WorkerProcess(settings, "w-cli", tmp_path)
    follower: Follower | None = None
    images = {name: render_bill([f"COMMAND {name.upper()}", "TOTAL 3.25"]) for name in ("first", "second", "third")}
    files = {name: tmp_path / f"{name}.png" for name in images}
    for name, image in images.items():
        files[name].write_bytes(image)
    try:
        # a malformed attribute is a usage error: exit 2, nothing submitted
        usage = billstream(settings, "submit", str(files["first"]), "--attr", "no-equals-sign")
        assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr, usage.stderr

        wait_http(settings)
        missing = tmp_path / "missing.png"
        done = billstream(settings, "submit", str(files["first"]), str(files["second"]), str(missing),
                          "--attr", "till=7", "--json")
        assert done.returncode == 1, done.stderr  # one file failed
        first, second, failed = json_lines(done.stdout)
        assert (first["file"], second["file"], failed["file"]) == (str(files["first"]), str(files["second"]), str(missing))
        assert first["sha256"] == hashlib.sha256(images["first"]).hexdigest() and "error" in failed
        orders = [first["order_number"], second["order_number"]]
        assert len(set(orders)) == 2

        for order in orders:
            codes, body = get_until_done(settings, order)
            assert set(codes[:-1]) <= {3, 4}, codes  # pending or not yet seen, then done
            assert body["order_number"] == order and body["status"] == "RECOGNIZED" and body["cached"] is False
            assert "TOTAL" in body["page_text"].upper()
        unknown = billstream(settings, "get", "NO-SUCH-ORDER")
        assert unknown.returncode == 4, (unknown.stdout, unknown.stderr)
        human = billstream(settings, "get", orders[0])
        assert human.returncode == 0 and orders[0] in human.stdout and "RECOGNIZED" in human.stdout

        # without --follow: every committed result from the beginning, each once, then exit 0
        everything = billstream(settings, "results", "--json")
        assert everything.returncode == 0, everything.stderr
        assert "from the beginning" in everything.stderr
        assert sorted(r["order_number"] for r in json_lines(everything.stdout)) == sorted(orders)

        # --follow starts at the end: only results that land after it started
        follower = Follower(settings)
        follower.wait_for(follower.stderr, lambda line: "from the end" in line, timeout=90)
        again = billstream(settings, "submit", str(files["first"]), str(files["third"]), "--json")
        assert again.returncode == 0, again.stderr
        repeat, third = (r["order_number"] for r in json_lines(again.stdout))
        wanted = {repeat, third}
        printed: dict[str, dict[str, Any]] = {}
        while not wanted <= printed.keys():
            line = follower.wait_for(follower.stdout, lambda _: True, timeout=180)[0]
            record = json.loads(line)
            assert record["order_number"] not in printed, f"printed twice: {record['order_number']}"
            printed[record["order_number"]] = record
        assert printed.keys() == wanted, f"the follower printed older results too: {sorted(printed)}"
        assert printed[repeat]["cached"] is True and printed[third]["cached"] is False
        assert follower.stop() == 0
    finally:
        if follower is not None and follower.process.poll() is None:
            follower.process.kill()
        stop_all(stream, worker)
