"""The benches' ``--weights-dir`` option: which sets of weights to run, checked before any work."""
from __future__ import annotations

import argparse
from pathlib import Path

from models.manifest import WEIGHTS_DIR


def add_weights_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", type=Path, action="append", help="weights to run (repeatable; default: shipped)")


def chosen_weights_dirs(parser: argparse.ArgumentParser, given: list[Path] | None) -> list[Path]:
    """The weights given (the shipped ones when none); a directory without a manifest is a usage error."""
    dirs = given or [WEIGHTS_DIR]
    missing = [str(d) for d in dirs if not (d / "manifest.json").is_file()]
    if missing:
        parser.error(f"no manifest.json in --weights-dir {', '.join(missing)}")
    return dirs
