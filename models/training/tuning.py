"""The command line the post-training tuners share (reread, word check, line floor): the
weights to tune, the CPU threads to read with, and whether to store the choice."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from models.manifest import WEIGHTS_DIR


def tuning_parser(doc: str | None, chosen: str) -> argparse.ArgumentParser:
    """``chosen`` names what ``--write`` stores in the manifest ("the chosen margin")."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--write", action="store_true", help=f"store {chosen} in the manifest")
    parser.add_argument("--json", action="store_true")
    return parser
