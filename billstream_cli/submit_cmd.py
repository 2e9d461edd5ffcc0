"""`billstream submit FILE...`, `billstream backfill DIR|MANIFEST`, `billstream results --follow`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from billstream_cli.formatting import format_result
from billstream_core.errors import BillstreamError
from billstream_core.kafka import wait_for_broker
from billstream_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    submit = sub.add_parser("submit", help="upload bills and publish BillSubmitted events")
    submit.add_argument("files", nargs="+", type=Path)
    submit.add_argument("--order-number", help="only with one file; generated (sortable, unique) otherwise")
    submit.add_argument("--attr", action="append", default=[], type=_attribute, metavar="KEY=VALUE",
                        help="attribute to attach (repeatable)")
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(run=run_submit)

    backfill = sub.add_parser("backfill", help="submit a directory or manifest of bills, resumably")
    backfill.add_argument("source", type=Path, help="directory of images, or a file with one path per line")
    backfill.add_argument("--concurrency", type=int, default=8)
    backfill.add_argument("--rate", type=float, default=None, help="max submissions per second")
    backfill.add_argument("--ledger", type=Path, default=None, help="default: SOURCE/.billstream-ledger.jsonl "
                                                                     "(or next to the manifest)")
    backfill.add_argument("--json", action="store_true")
    backfill.set_defaults(run=run_backfill)

    about = ("print results from the results topic (read_committed); without --follow, every result there is, "
             "then exit after 5 s without a new one")
    results = sub.add_parser("results", help=about, description=about)
    results.add_argument("--follow", action="store_true", help="start at the end and keep waiting for new results")
    results.add_argument("--from-beginning", action="store_true", help="with --follow: start at the oldest result")
    results.add_argument("--json", action="store_true")
    results.set_defaults(run=run_results)


def _attribute(pair: str) -> tuple[str, str]:
    """argparse type: a bad pair is a usage error (exit 2) before anything is submitted."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"wants KEY=VALUE, got {pair!r}")
    return key, value


def run_submit(settings: Settings, args: argparse.Namespace) -> int:
    from producers.submit import BillSubmitter

    if args.order_number and len(args.files) > 1:
        raise BillstreamError("--order-number needs exactly one file")
    wait_for_broker(settings.kafka)
    submitter = BillSubmitter(settings, source="cli")
    failures = 0
    for path in args.files:
        try:
            submission = submitter.submit(path, order_number=args.order_number, attributes=dict(args.attr))
            record = {"file": str(path), "order_number": submission.order_number, "sha256": submission.image.sha256}
        except (BillstreamError, OSError) as exc:
            failures += 1
            record = {"file": str(path), "error": str(exc)}
        print(json.dumps(record) if args.json else
              f"{record['file']}: {record.get('order_number') or 'FAILED ' + record['error']}")
    return 1 if failures else 0


def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from producers.backfill import Ledger, backfill, list_inputs
    from producers.submit import BillSubmitter

    paths = list_inputs(args.source)
    ledger_path = args.ledger or (args.source if args.source.is_dir() else args.source.parent) / ".billstream-ledger.jsonl"
    wait_for_broker(settings.kafka)
    ledger = Ledger(ledger_path)
    with tqdm(total=len(paths), desc="backfill", unit="bill", disable=args.json, file=sys.stderr) as bar:
        report = backfill(BillSubmitter(settings, source="backfill"), paths, ledger, concurrency=args.concurrency,
                          rate=args.rate, on_progress=lambda outcome: bar.update(1))
    summary = {"total": report.total, "submitted": report.submitted, "skipped": report.skipped,
               "failed": len(report.failed), "seconds": round(report.seconds, 2), "ledger": str(ledger_path),
               "failures": report.failed, "halted": report.halted}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"backfill: {report.submitted} submitted, {report.skipped} skipped (in ledger), "
              f"{len(report.failed)} failed of {report.total} in {report.seconds:.1f}s; ledger {ledger_path}")
        for path, error in list(report.failed.items())[:20]:
            print(f"  failed {path}: {error}")
        if report.halted:
            untried = report.total - report.submitted - report.skipped - len(report.failed)
            print(f"backfill halted, {untried} not tried: {report.halted}. Run it again to resume.")
    return 1 if report.failed or report.halted else 0


IDLE_EXIT_S = 5.0


def run_results(settings: Settings, args: argparse.Namespace) -> int:
    from billstream_core.results_reader import ResultsReader

    wait_for_broker(settings.kafka)
    start_at_end = args.follow and not args.from_beginning
    topic = settings.topics.results
    with ResultsReader(settings.kafka, topic, start="end" if start_at_end else "beginning") as reader:
        # stderr: stdout stays records only
        print(f"billstream results: reading {reader.partitions} partition(s) of {topic} "
              f"from the {'end' if start_at_end else 'beginning'}", file=sys.stderr, flush=True)
        idle_since = time.monotonic()
        try:
            while args.follow or time.monotonic() - idle_since < IDLE_EXIT_S:
                result = reader.poll(0.5)
                if result is None:
                    continue
                idle_since = time.monotonic()
                if result.record is None:
                    print(f"undecodable result at offset {result.message.offset()}: {result.error}", file=sys.stderr)
                    continue
                print(json.dumps(result.record) if args.json else format_result(result.record), flush=True)
        except KeyboardInterrupt:
            pass
    return 0
