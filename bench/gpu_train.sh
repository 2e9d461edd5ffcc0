#!/usr/bin/env bash
# Recognizer training on a lent GPU machine (no network there), as one command that fits a
# 10-minute call. The recipe is docs/training.md's, shortened to 16 epochs and stopped after
# --max-minutes 8 (checkpointed); the best epoch on the validation fold comes back as
# weights/crnn.npz + weights/manifest.json. Here: copy models/weights to a folder, put those
# two in it, run calibrate_boxes and tune_reread for it (the trainer's manifest entry has no
# reread choice yet), and compare with `bench.ocr_accuracy --weights-dir models/weights --weights-dir DIR`.
# Checked on the CPU with a tiny run: PYTHON=.venv/bin/python bench/gpu_train.sh /tmp/out
#     --device cpu --epochs 1 --limit 3 --synthetic 50 --workers 1 --batch-size 16
#
# Here, first (needs ../shared and the font packages of FONT_PACKAGES):
#     bench/gpu_train.sh --prepare
#   copies the training and fold receipts (about 55 MiB) and the fonts, cut to printable
#   ASCII (fontTools, fetched into a temporary folder), into the ignored .gpu-train/.
# There (carry .gpu-train and nothing else: the call carries 64 MiB at most):
#     bench/gpu_train.sh [OUT_DIR] [extra train_recognizer options]
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_DIR=.gpu-train
PYTHON="${PYTHON:-python3}"

if [[ "${1:-}" == "--prepare" ]]; then
    grep -qx "/$TRAIN_DIR/" .git/info/exclude 2>/dev/null || echo "/$TRAIN_DIR/" >> .git/info/exclude
    rm -rf "$TRAIN_DIR" && mkdir -p "$TRAIN_DIR/fonts"
    .venv/bin/python - "$TRAIN_DIR" <<'PY'
import shutil, sys
from pathlib import Path
from models.training.receipts import load_all, read_val_fold, split_train_val
train, val = split_train_val(load_all(), read_val_fold())
for receipt in train + val:
    target = Path(sys.argv[1]) / receipt.image_path.parent.name
    target.mkdir(exist_ok=True)
    for suffix in (".jpg", ".txt", ".json"):
        source = receipt.image_path.with_suffix(suffix)
        if source.exists():
            shutil.copy2(source, target / source.name)
print(f"{len(train)} training and {len(val)} fold receipts")
PY
    tools=$(mktemp -d)
    python3 -m pip install -q --target "$tools" fonttools
    .venv/bin/python -c 'from models.training.synthetic_lines import find_fonts; print("\n".join(map(str, find_fonts())))' |
    while read -r font; do
        name=$(basename "$font"); name="${name%.*}.ttf"
        PYTHONPATH="$tools" python3 -m fontTools.subset "$font" --unicodes=U+0020-007E --output-file="$TRAIN_DIR/fonts/$name" \
            --no-hinting 2>/dev/null || echo "skipped $font"
    done
    rm -rf "$tools"
    echo "$(ls "$TRAIN_DIR/fonts" | wc -l) fonts; $(du -sh "$TRAIN_DIR" | cut -f1) in $TRAIN_DIR"
    exit 0
fi

OUT_DIR="${1:-${OUT:-/tmp/gpu-out}}"
shift || true
mkdir -p "$OUT_DIR/weights"
cp models/weights/manifest.json "$OUT_DIR/weights/"  # the trainer writes crnn.npz and its manifest entry beside it
export PYTHONUNBUFFERED=1 BILLSTREAM_DATA_ROOT="$PWD/$TRAIN_DIR" BILLSTREAM_FONT_DIR="$PWD/$TRAIN_DIR/fonts"
"$PYTHON" -m models.training.train_recognizer --device cuda --lr 2e-3 --batch-size 96 --threads 1 \
    --epochs 16 --max-minutes 8 --synthetic 20000 --workers 14 --width-jitter 0.65,1.2 --seed 2024 \
    --weights-dir "$OUT_DIR/weights" --run-dir /tmp/recognizer-run "$@" 2>&1 | tr '\r' '\n' | grep -v '%|' |
    tee "$OUT_DIR/train.log"
