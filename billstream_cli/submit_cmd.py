"""`billstream submit FILE...`, `billstream backfill DIR|MANIFEST`, `billstream results --follow`."""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

from billstream_core.errors import BillstreamError
from billstream_core.group import subscribe
from billstream_core.kafka import make_consumer, wait_for_broker
from billstream_core.serde import codec
from billstream_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    submit = sub.add_parser("submit", help="upload bills and publish BillSubmitted events")
    submit.add_argument("files", nargs="+", type=Path)
    submit.add_argument("--order-number", help="only with one file; generated (sortable, unique) otherwise")
    submit.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", help="attribute to attach")
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

    results = sub.add_parser("results", help="print results from the results topic (read_committed)")
    results.add_argument("--follow", action="store_true", help="keep waiting for new results")
    results.add_argument("--from-beginning", action="store_true", help="start at the oldest result")
    results.add_argument("--json", action="store_true")
    results.set_defaults(run=run_results)


def _attributes(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BillstreamError(f"--attr wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def run_submit(settings: Settings, args: argparse.Namespace) -> int:
    from producers.submit import BillSubmitter

    if args.order_number and len(args.files) > 1:
        raise BillstreamError("--order-number needs exactly one file")
    wait_for_broker(settings.kafka)
    submitter = BillSubmitter(settings, source="cli")
    failures = 0
    for path in args.files:
        try:
            submission = submitter.submit(path, order_number=args.order_number, attributes=_attributes(args.attr))
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
               "failures": report.failed}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"backfill: {report.submitted} submitted, {report.skipped} skipped (in ledger), "
              f"{len(report.failed)} failed of {report.total} in {report.seconds:.1f}s; ledger {ledger_path}")
        for path, error in list(report.failed.items())[:20]:
            print(f"  failed {path}: {error}")
    return 1 if report.failed else 0


def format_result(record: dict, *, lines: int = 3) -> str:
    head = " | ".join(line["text"] for line in record["lines"][:lines])
    status = record["status"] + (f" {record['error_code']}" if record["error_code"] else "")
    seconds = (record["completed_at_ms"] - record["submitted_at_ms"]) / 1000 if record.get("submitted_at_ms") else None
    timing = f"{seconds:.2f}s" if seconds is not None else "-"
    return f"{record['order_number']}  {status:<28} {'cached' if record['cached'] else 'fresh ':<6} {timing:>7}  {head}"


def run_results(settings: Settings, args: argparse.Namespace) -> int:
    wait_for_broker(settings.kafka)
    decoder = codec("BillResult")
    start_at_end = args.follow and not args.from_beginning
    consumer = make_consumer(settings.kafka, f"billstream-results-{uuid.uuid4().hex[:12]}", read_committed=True,
                             extra={"auto.offset.reset": "latest" if start_at_end else "earliest"})
    subscribe(consumer, [settings.topics.results], reset=OFFSET_END if start_at_end else OFFSET_BEGINNING)
    idle_since = time.monotonic()
    try:
        while args.follow or time.monotonic() - idle_since < 5:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            idle_since = time.monotonic()
            try:
                record = decoder.decode(message.value())
            except BillstreamError as exc:
                print(f"undecodable result at offset {message.offset()}: {exc}", file=sys.stderr)
                continue
            print(json.dumps(record) if args.json else format_result(record), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0
