"""`billstream demo`: the README's main job on one machine.

Today: bring the local stack up, show what runs where, run the submit round trip. The
workers and the stream app join it as they land (see the pipeline issue).
"""
from __future__ import annotations

import argparse

from billstream_cli import infra_cmd, smoke_cmd
from billstream_core.settings import Settings
from infra.stack import LocalStack


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("demo", help="local demo: stack up, then a real round trip")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    statuses = LocalStack(settings).up()
    if not args.json:
        infra_cmd.print_status(statuses, as_json=False)
    return smoke_cmd.run(settings, argparse.Namespace(no_infra=True, json=args.json, timeout=30.0))
