#!/usr/bin/env bash
# The GPU checks of the engine, as one command for a lent GPU machine (which reaches no
# network): the speed table (pages per detector call, engine processes sharing the GPU) and
# fp16 against fp32 for accuracy on the validation fold. About 6 minutes on an H100 before the
# Python-beam rows (fp16+auto-python) were added; one config more, so about 7 to 8 now (estimated).
#
# Here, first (needs the network and ../shared):   bench/gpu_session.sh --prepare
#   puts the Python wheels the device image lacks in .gpu/wheels and the fold's receipts in
#   .gpu/receipts-dev (both ignored by git).
# There (carry .gpu):                              bench/gpu_session.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu
PACKAGES=(lightgbm==4.7.0 pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
          annotated-types==0.8.0 typing-inspection==0.4.5)
# numba (the compiled beam search) is not carried: its llvmlite wheel alone would pass the
# call's 64 MiB. Where the device image lacks it, the engine warns and runs the beam in
# Python (the same readings, slower); gpu.txt says which search ran.

if [[ "${1:-}" == "--prepare" ]]; then
    grep -qx "/$GPU_DIR/" .git/info/exclude 2>/dev/null || echo "/$GPU_DIR/" >> .git/info/exclude
    mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/receipts-dev"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d "$GPU_DIR/wheels" "${PACKAGES[@]}"
    while read -r name; do
        cp "../shared/data/receipts-dev/$name".{jpg,txt} "$GPU_DIR/receipts-dev/" 2>/dev/null || true
        cp "../shared/data/receipts-dev/$name.json" "$GPU_DIR/receipts-dev/" 2>/dev/null || true
    done < models/data/val_fold.txt
    du -sh "$GPU_DIR"
    exit 0
fi

OUT_DIR="${1:-${OUT:-/tmp/gpu-out}}"
mkdir -p "$OUT_DIR"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU_DIR"/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
{ python3 -c 'import numba; print("beam search: compiled, numba", numba.__version__)' 2>/dev/null \
    || echo "beam search: Python (numba is not on this machine)"; } | tee -a "$OUT_DIR/gpu.txt"
python3 -m bench.engine_gpu --split "$GPU_DIR/receipts-dev" --pages 64 --batches 8,32 --detect-batches 1,16 \
    --procs 1,4 --configs fp16+greedy,fp16+auto,fp16+auto-python,fp32+greedy 2>&1 | tee "$OUT_DIR/engine_gpu.md"
python3 -m bench.ocr_accuracy --split "$GPU_DIR/receipts-dev" --systems billstream --backend torch --device cuda \
    --precisions fp32,fp16 --decoders beam,greedy --no-line-crops 2>&1 | tee "$OUT_DIR/ocr_accuracy_gpu.md"
