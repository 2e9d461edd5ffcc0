"""Build the word check's lexicon: Debian's English word lists, plus the words of the
training receipts printed by at least two vendors (street, place and trade words; a word of
one vendor is its name and would only teach the check that vendor). The validation fold's
receipts are excluded. Writes models/weights/lexicon.txt.gz and the manifest's
``language_model.lexicon`` entry.

    apt-get install wamerican wbritish
    python -m models.training.build_lexicon [--margin 5]
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from models.manifest import read_manifest
from models.recognition.lexicon import Lexicon
from models.training.receipts import load_all, read_val_fold, split_train_val, vendor_key
from models.weights_io import WEIGHTS_DIR, file_sha256, update_manifest

LEXICON_FILE = "lexicon.txt.gz"
WORD_LISTS = (Path("/usr/share/dict/american-english"), Path("/usr/share/dict/british-english"))
MIN_VENDORS = 2


def dictionary_words(paths: tuple[Path, ...] = WORD_LISTS) -> set[str]:
    """Letters-only words of the lists, upper-cased (possessives and accented words left out)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing: apt-get install wamerican wbritish")
    words: set[str] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
            word = line.strip()
            if word.isascii() and word.isalpha():
                words.add(word.upper())
    return words


def receipt_words(min_vendors: int = MIN_VENDORS) -> tuple[set[str], int]:
    """Words of the training receipts' transcripts printed by ``min_vendors`` vendors or more."""
    train, _ = split_train_val(load_all(), read_val_fold())
    vendors: dict[str, set[str]] = defaultdict(set)
    for receipt in train:
        for line in receipt.lines:
            for word in re.findall(r"[A-Z]+", line.text.upper()):
                vendors[word].add(vendor_key(receipt.company))
    return {w for w, seen in vendors.items() if len(seen) >= min_vendors}, len(train)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margin", type=float, default=5.0,
                        help="nats the line's CTC log-likelihood may fall by for lexicon words")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    english = dictionary_words()
    printed, receipts = receipt_words()
    lexicon = Lexicon(english | printed)
    path = args.weights_dir / LEXICON_FILE
    lexicon.save(path)
    manifest_path = args.weights_dir / "manifest.json"
    entry = read_manifest(manifest_path)["language_model"]
    entry["lexicon"] = {
        "file": LEXICON_FILE, "sha256": file_sha256(path), "words": len(lexicon), "margin": args.margin,
        "data": f"{len(english)} words of Debian's wamerican and wbritish lists, and {len(printed)} words printed "
                f"by {MIN_VENDORS}+ vendors among {receipts} training receipts (validation fold excluded)",
        "command": "python -m models.training.build_lexicon" + (f" --margin {args.margin:g}" if args.margin != 5 else ""),
    }
    update_manifest("language_model", entry, path=manifest_path)
    print(f"{path}: {len(lexicon)} words, {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
