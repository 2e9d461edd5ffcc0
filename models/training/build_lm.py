"""Build the decoder's character language model from training transcripts only.

The validation fold's receipts are excluded (as for both networks), so its scores stay
honest. Writes models/weights/char_lm.json.gz and the manifest's ``language_model`` entry
(keeping its ``lexicon``, which `build_lexicon` writes).

    python -m models.training.build_lm [--order 6]
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from models.manifest import read_manifest
from models.recognition.char_lm import CharNgramLM
from models.recognition.charset import Charset
from models.recognition.ctc import BeamConfig
from models.training.receipts import load_all, read_val_fold, split_train_val
from models.weights_io import WEIGHTS_DIR, file_sha256, update_manifest

LM_FILE = "char_lm.json.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    charset = Charset()
    train, _ = split_train_val(load_all(), read_val_fold())
    texts = [t for r in train for line in r.lines if (t := charset.normalize(line.text))]
    lm = CharNgramLM.build(texts, args.order, alphabet_size=len(charset) - 1)
    path = args.weights_dir / LM_FILE
    lm.save(path)
    manifest_path = args.weights_dir / "manifest.json"
    kept = {k: v for k, v in (read_manifest(manifest_path).get("language_model") or {}).items() if k == "lexicon"}
    update_manifest("language_model", kept | {
        "file": LM_FILE, "sha256": file_sha256(path), "type": "char-ngram-witten-bell", "order": args.order,
        "decoder": asdict(BeamConfig()),
        "data": f"{len(texts)} transcript lines of {len(train)} training receipts (validation fold excluded)",
        "command": "python -m models.training.build_lm" + (f" --order {args.order}" if args.order != 6 else ""),
    }, path=manifest_path)
    print(f"{path}: order {args.order}, {len(lm.counts)} histories, {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
