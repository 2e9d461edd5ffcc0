"""Entry point of the `billstream` console command.

Exit codes: 0 success, 1 a command failed (one line on stderr says why and what to do),
2 bad usage or bad settings, 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from billstream_cli import api_cmd, demo_cmd, infra_cmd, ocr_cmd, smoke_cmd, stream_cmd, submit_cmd, worker_cmd
from billstream_core.errors import BillstreamError, SettingsError
from billstream_core.logs import configure_logging
from billstream_core.settings import load_settings

COMMANDS = (api_cmd, demo_cmd, infra_cmd, ocr_cmd, smoke_cmd, stream_cmd, submit_cmd, worker_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billstream", description="High-concurrency bill recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="read BILLSTREAM_* settings from this file (KEY=VALUE lines; the environment wins): "
                             "a component's credentials on the secure stack, kept off the command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.env_file is not None and not args.env_file.is_file():
            raise SettingsError(f"--env-file {args.env_file}: no such file")
        settings = load_settings(_env_file=args.env_file) if args.env_file else load_settings()
        configure_logging(logging.DEBUG if args.verbose else logging.WARNING, settings.log.format)
        if not args.verbose:
            logging.getLogger("billstream.kafka").setLevel(logging.CRITICAL)
        return int(args.run(settings, args))
    except SettingsError as exc:
        print(f"billstream: {exc}", file=sys.stderr)
        return 2
    except BillstreamError as exc:
        print(f"billstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("billstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
