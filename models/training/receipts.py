"""The receipt data sets (SROIE layout: NAME.jpg + NAME.txt lines + NAME.json key fields),
read from ../shared/data (or ``$BILLSTREAM_DATA_ROOT``, for a training machine that holds a
copy elsewhere), never copied into the repository, and the validation fold."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("BILLSTREAM_DATA_ROOT") or REPO.parent / "shared" / "data")
SPLITS = ("receipts-dev", "receipts-extra")
VAL_FOLD_FILE = Path(__file__).resolve().parents[1] / "data" / "val_fold.txt"


@dataclass(frozen=True)
class GTLine:
    quad: np.ndarray  # 4x2 float32, clockwise from top-left
    text: str


@dataclass(frozen=True)
class Receipt:
    name: str
    image_path: Path
    lines: tuple[GTLine, ...]
    company: str


def parse_lines(path: Path) -> tuple[GTLine, ...]:
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = raw.split(",", 8)
        if len(parts) < 9:
            continue
        try:
            coords = np.array([float(v) for v in parts[:8]], dtype=np.float32).reshape(4, 2)
        except ValueError:
            continue
        lines.append(GTLine(coords, parts[8].strip()))
    return tuple(lines)


def vendor_key(company: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", company.upper())[:24] or "UNKNOWN"


def load_receipts(directory: Path) -> list[Receipt]:
    receipts = []
    for image in sorted(directory.glob("*.jpg")):
        txt = image.with_suffix(".txt")
        if not txt.exists():
            continue
        key_file = image.with_suffix(".json")
        company = json.loads(key_file.read_text()).get("company", "") if key_file.exists() else ""
        receipts.append(Receipt(image.stem, image, parse_lines(txt), company))
    return receipts


def load_all(root: Path = DATA_ROOT) -> list[Receipt]:
    return [r for split in SPLITS for r in load_receipts(root / split)]


def choose_val_fold(dev: list[Receipt], fraction: float = 0.2) -> list[str]:
    """Whole vendors, picked by a stable hash, until ``fraction`` of the dev receipts."""
    by_vendor: dict[str, list[str]] = {}
    for r in dev:
        by_vendor.setdefault(vendor_key(r.company), []).append(r.name)
    order = sorted(by_vendor, key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    chosen: list[str] = []
    for vendor in order:
        if len(chosen) >= fraction * len(dev):
            break
        if len(by_vendor[vendor]) > 0.05 * len(dev):
            continue  # one big vendor would dominate the fold
        chosen.extend(by_vendor[vendor])
    return sorted(chosen)


def read_val_fold(path: Path = VAL_FOLD_FILE) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def split_train_val(receipts: list[Receipt], val_names: set[str]) -> tuple[list[Receipt], list[Receipt]]:
    """Validation receipts, and training receipts of vendors that never appear in validation."""
    val = [r for r in receipts if r.name in val_names]
    val_vendors = {vendor_key(r.company) for r in val}
    train = [r for r in receipts if r.name not in val_names and vendor_key(r.company) not in val_vendors]
    return train, val


def held_out_receipts(receipts: list[Receipt], val_names: set[str]) -> list[Receipt]:
    """The receipts in neither training nor the fold: the fold vendors' other receipts, where
    decoding settings are chosen without touching the fold."""
    train, val = split_train_val(receipts, val_names)
    used = {r.name for r in train} | {r.name for r in val}
    return [r for r in receipts if r.name not in used]
