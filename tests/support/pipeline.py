"""Helpers for pipeline tests: isolated topic names, worker processes, result counting."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.stacks import isolated_settings as isolated_settings  # re-exported: the tests' fresh topics
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings, settings_env
from infra.components import ChildProcess
from tests.support.trail import log_tails, order_trail


class ServiceProcess(ChildProcess):
    """A `billstream` subcommand on ``settings`` (passed in its environment)."""

    def __init__(self, settings: Settings, name: str, log_dir: Path, args: list[str],
                 env: dict[str, str] | None = None) -> None:
        super().__init__(args, log_dir / f"{name}.log", {**os.environ, **settings_env(settings), **(env or {})})


class WorkerProcess(ServiceProcess):
    """``instance_id=None``: the worker's default identity, its host's lowest free slot."""

    def __init__(self, settings: Settings, instance_id: str | None, log_dir: Path, input_topic: str | None = None,
                 *, name: str | None = None, env: dict[str, str] | None = None) -> None:
        args = ["worker", "--json"] + (["--instance-id", instance_id] if instance_id else []) \
            + (["--input-topic", input_topic] if input_topic else [])
        super().__init__(settings, name or f"worker-{instance_id}", log_dir, args, env)


def collect_results(settings: Settings, expected: set[str], *, timeout: float = 180.0, settle: float = 3.0,
                    topic: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every result record (read_committed) by order number, until all expected orders have
    one and nothing new arrived for ``settle`` seconds, or the timeout."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    with ResultsReader(settings.kafka, topic or settings.topics.results, group_prefix="reader") as reader:
        while time.monotonic() < deadline:
            result = reader.poll(0.5)
            if result is not None:
                assert result.record is not None, result.error
                assert result.record["order_number"] == result.order_number
                found[result.order_number].append(result.record)
                last_new = time.monotonic()
            elif expected <= found.keys() and time.monotonic() - last_new > settle:
                break
    return dict(found)


def count(submitted: set[str], found: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {"submitted": len(submitted), "results": sum(len(v) for v in found.values()),
            "distinct": len(found.keys() & submitted), "lost": len(submitted - found.keys()),
            "duplicates": sum(len(v) - 1 for v in found.values() if len(v) > 1),
            "unexpected": len(found.keys() - submitted)}


def assert_each_order_once(label: str, submitted: set[str], found: dict[str, list[dict[str, Any]]], *,
                           settings: Settings | None = None, log_dir: Path | None = None) -> dict[str, int]:
    """Print the counts (the figures the issue asks to see) and fail on a lost, doubled or
    unexpected order; with ``settings``, the failure names each lost or doubled order and
    every record of it on the pipeline's topics, and with ``log_dir`` the services' log tails."""
    counts = count(submitted, found)
    print(f"{label}: {counts}")
    if counts["lost"] == 0 and counts["duplicates"] == 0 and counts["unexpected"] == 0:
        return counts
    details = [str(counts)]
    if settings is not None:
        odd = (submitted - found.keys()) | {o for o, v in found.items() if len(v) > 1}
        trail = order_trail(settings, odd)
        for order in sorted(odd):
            details.append(f"{'lost' if order not in found else 'doubled'} {order}:")
            details += [f"  {line}" for line in trail.get(order, ["on no topic"])]
    if log_dir is not None:
        details.append(log_tails(log_dir))
    raise AssertionError("\n".join(details))


def stop_all(*processes: ServiceProcess | None) -> None:
    for process in processes:
        if process is not None:
            process.terminate()
            process.close()


def wait_http(settings: Settings, timeout: float = 90) -> None:
    """Until /ready says the tables are recovered (urlopen raises on the 503 before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{settings.stream.url}/ready", timeout=5) as response:
                if json.loads(response.read())["ready"]:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError("the stream app never became ready")
