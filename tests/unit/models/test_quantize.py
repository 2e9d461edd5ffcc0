"""The int8 recognizer's calibration lines: drawn here, the same every time, shaped like crops."""
from __future__ import annotations

import numpy as np

from models.quantize import calibration_lines


def test_calibration_lines_are_deterministic_receipt_shaped_crops() -> None:
    first, again = calibration_lines(20, seed=3), calibration_lines(20, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, calibration_lines(20, seed=4)))
    assert {line.shape[0] for line in first} == {32} and all(line.dtype == np.uint8 for line in first)
    assert len({line.shape[1] for line in first}) > 10  # many widths, as the width batches see
    for line in first:
        assert np.median(line) > 200 and line.min() < 100  # dark print on a light ground
