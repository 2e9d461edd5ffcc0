"""The int8 recognizer for CPU serving: calibrated static int8 for the convolutions and
matrix products, dynamic int8 for the BiLSTM.

Static quantization needs activation ranges, and serving has no data to calibrate on
(nothing is downloaded, and no receipt ships). Lines drawn here with OpenCV's built-in
Hershey fonts are enough: dark print on a light ground, 32 px high, like every crop the
engine feeds. On 1,446 training-receipt crops, greedy line exact is 0.9537 calibrated
this way, 0.9544 calibrated on real crops, 0.9544 with dynamic int8 only; the network
runs ~28% faster than the dynamic-only one (AVX-512 VNNI, 2 threads).
"""
from __future__ import annotations

import random
import string
from pathlib import Path

import cv2
import numpy as np

from models.preprocess import batch_by_width, resize_to_height

HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX)
CHARACTERS = string.ascii_uppercase * 3 + string.digits * 3 + ".,:-/()%  " * 2


def calibration_lines(count: int = 300, seed: int = 0) -> list[np.ndarray]:
    """Receipt-like lines (random capitals, digits, punctuation), 32 px high, the same for a seed."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        text = "".join(rng.choice(CHARACTERS) for _ in range(rng.randint(3, 40))).strip() or "TOTAL"
        font, scale, thickness = rng.choice(HERSHEY), rng.uniform(0.8, 1.6), rng.choice((1, 1, 2))
        (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
        image = np.full((height + baseline + 8, width + 8), 255, np.uint8)
        cv2.putText(image, text, (4, height + 4), font, scale, rng.randint(0, 90), thickness, cv2.LINE_AA)
        blurred = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.1, 1.0))
        lines.append(resize_to_height(blurred, 32, max_width=1024))
    return lines


def quantize_recognizer(fp32: Path, out: Path) -> None:
    """``fp32``: the exported recognizer; ``out``: its int8 version (``out`` + ``.static`` on the way)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    batches = [(array.astype(np.float32) / 255.0)[:, None]
               for _, array in batch_by_width(calibration_lines(), max_batch=64)]

    class Lines(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.remaining = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.remaining, None)
            return None if batch is None else {"images": batch}

    static = out.with_name(out.name + ".static")
    try:
        quantize_static(str(fp32), str(static), Lines(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"])
        quantize_dynamic(str(static), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"])
    finally:
        static.unlink(missing_ok=True)
