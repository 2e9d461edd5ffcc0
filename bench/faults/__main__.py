"""`python -m bench.faults [--cases a,b] [--fast]`: every fault case against real processes,
one row each. The cases that need brokers to fail run on a three-node KRaft cluster; all
run on stacks started here (free ports, throw-away state directories), never on a stack
already running.

Each row: bills submitted (acknowledged by the broker), results read read_committed, lost
(submitted, no result), duplicates (more than one result for an order), recovery seconds
(from the heal until results flow at 80% of the pre-fault rate) and notes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from bench.faults.cases import CASES, FAST, Context
from bench.faults.harness import Row
from bench.machine import describe
from bench.stacks import scratch_stack
from billstream_core.settings import Settings
from infra.stack import LocalStack


@contextmanager
def stack(brokers: int) -> Iterator[tuple[LocalStack, Settings]]:
    """The one-node stack's broker also listens behind a proxy, for the network case."""
    with scratch_stack(brokers=brokers, proxied=brokers == 1) as started:
        yield started


def run_cases(names: list[str], log_dir: Path, **timing: float) -> list[Row]:
    rows: list[Row] = []
    for brokers in (3, 1):
        chosen = [n for n in names if CASES[n][1] == (brokers == 3)]
        if not chosen:
            continue
        with stack(brokers) as (local, settings):
            for name in chosen:
                print(f"[faults] {name} ...", file=sys.stderr, flush=True)
                row = CASES[name][0](Context(local, settings, log_dir, **timing))
                print(f"[faults] {name}: {json.dumps(asdict(row))}", file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def print_table(rows: list[Row]) -> None:
    print("| case | submitted | results | lost | duplicates | recovery s | longest gap s | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        gap = "-" if r.longest_gap_s is None else f"{r.longest_gap_s:.1f}"
        print(f"| {r.case} | {r.submitted} | {r.results} | **{r.lost}** | **{r.duplicates}** | {recovery} | {gap} "
              f"| {r.notes} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=None, help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--fast", action="store_true", help=f"only {', '.join(FAST)} (what CI runs)")
    parser.add_argument("--rate", type=float, default=3.0, help="bills a second")
    parser.add_argument("--before", type=float, default=20.0, help="seconds of load before the fault")
    parser.add_argument("--fault", type=float, default=20.0, help="seconds the fault lasts")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after the heal")
    parser.add_argument("--logs", type=Path, default=None, help="where the processes' logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)
    logging.getLogger("billstream.audit").setLevel(logging.WARNING)
    names = list(FAST) if args.fast else (args.cases.split(",") if args.cases else list(CASES))
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="bench-faults-logs-"))
    rows = run_cases(names, log_dir, rate=args.rate, before_s=args.before, fault_s=args.fault, after_s=args.after)
    print(describe())
    print(f"load: {args.rate:g} bills/s (30% repeats), {args.before:g}s before the fault, {args.fault:g}s of fault, "
          f"{args.after:g}s after; logs in {log_dir}")
    print_table(rows)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
