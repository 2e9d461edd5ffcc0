"""Page preprocessing switches: deskew finds the correction for a rotated page."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.preprocess import PreprocessConfig, estimate_skew, prepare_page, rotate
from producers.samples import render_bill

LINES = ["GOLDEN MART SDN BHD", "INVOICE NO: 80823-1", "SUBTOTAL 10.00 ROUNDING 0.00", "TOTAL 12.50 CASH 20.00",
         "THANK YOU PLEASE COME AGAIN", "GST SUMMARY AMOUNT TAX 6%"]


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    page = cv2.imdecode(np.frombuffer(render_bill(LINES), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert page is not None
    return page


@pytest.mark.parametrize("angle", [-3.0, -1.0, 2.0, 4.0])
def test_deskew_estimates_the_correction_of_a_rotated_page(page: np.ndarray, angle: float) -> None:
    assert estimate_skew(rotate(page, angle)) == pytest.approx(-angle, abs=1.0)


def test_a_straight_page_is_left_alone_and_switches_are_independent(page: np.ndarray) -> None:
    assert estimate_skew(page) == pytest.approx(0.0, abs=0.3)
    assert np.array_equal(prepare_page(page, PreprocessConfig()), page)
    assert not np.array_equal(prepare_page(page, PreprocessConfig(clahe=True)), page)
    assert prepare_page(page, PreprocessConfig(denoise=True, deskew=True)).shape == page.shape
