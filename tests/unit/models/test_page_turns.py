"""Pages in any orientation and a few degrees askew are read upright and level."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.detection.geometry import rect_quad
from models.detection.postprocess import DetectedLine
from models.engine.orientation import Look, decide, turn
from models.engine.predictor import EngineOptions, OcrEngine
from models.engine.skew import level_page, line_skew, onto_level, unlevel
from producers.samples import sample_bill_lines, sample_bills


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.load(options=EngineOptions(backend="onnx-int8"))


def bill_page(index: int = 0) -> np.ndarray:
    page = cv2.imdecode(np.frombuffer(sample_bills(index + 1, run=3)[index], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert page is not None
    return page


def leaning(degrees: float, widths: list[float], height: float = 20.0) -> list[DetectedLine]:
    """Lines leaning ``degrees`` counter-clockwise as seen on the page."""
    ux = np.array([np.cos(np.radians(degrees)), -np.sin(np.radians(degrees))], np.float32)
    uy = np.array([-ux[1], ux[0]], np.float32)
    return [DetectedLine(rect_quad(np.array([300.0, 50.0 + 40 * i], np.float32), ux, uy, w, height), 0.9)
            for i, w in enumerate(widths)]


def test_the_lean_is_the_width_weighted_median_of_the_long_lines() -> None:
    assert line_skew(leaning(4.0, [300, 250, 200, 40])) == pytest.approx(4.0, abs=0.05)
    assert line_skew(leaning(-2.5, [300, 250, 200])) == pytest.approx(-2.5, abs=0.05)
    mixed = leaning(3.0, [400, 350]) + leaning(-6.0, [60, 70])  # short lines carry less weight
    assert line_skew(mixed + leaning(3.0, [300])) == pytest.approx(3.0, abs=0.05)
    assert line_skew(leaning(4.0, [300, 250])) == 0.0  # two long lines are no evidence
    assert line_skew(leaning(4.0, [30, 25, 20, 35])) == 0.0  # words, not lines


def test_levelling_grows_the_canvas_so_no_print_is_cut_and_maps_boxes_back() -> None:
    page = np.full((200, 100), 255, np.uint8)
    page[:, :5] = 0  # ink along the left edge
    levelled, matrix = level_page(page, 10.0)
    assert levelled.shape[0] > 200 and levelled.shape[1] > 100
    assert (levelled < 128).sum() == pytest.approx((page < 128).sum(), rel=0.1)
    corners = np.array([[0, 0], [100, 0], [100, 200], [0, 200]], np.float32)
    on_canvas = corners @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(unlevel(on_canvas, matrix), corners, atol=1e-3)


def looked(ratio: float, upright: float, over: float) -> Look:
    line = DetectedLine(np.zeros((4, 2), np.float32), 0.9)
    return Look([line], ratio, upright, over)


@pytest.mark.parametrize(("first", "second", "degrees"), [
    (looked(0.25, 0.97, 0.70), None, 0),  # upright, sure: no quarter look needed
    (looked(0.25, 0.72, 0.96), None, 180),  # reads surely turned over
    (looked(0.70, 0.40, 0.35), looked(0.25, 0.95, 0.60), 90),  # tall boxes; a quarter turn reads
    (looked(0.70, 0.40, 0.35), looked(0.25, 0.55, 0.93), 270),
    (looked(0.42, 0.97, 0.67), looked(0.30, 0.70, 0.60), 0),  # a narrow roll with tall boxes that reads surely as it is
    (looked(0.32, 0.27, 0.34), looked(0.50, 0.30, 0.20), 0),  # nothing reads surely: left as it came
])
def test_the_turn_is_the_surest_reading_and_an_unsure_page_is_left_alone(first: Look, second: Look | None,
                                                                         degrees: int) -> None:
    assert decide(first, second) == degrees


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_page_is_read_upright(engine: OcrEngine, degrees: int) -> None:
    result = engine.read_pages([turn(bill_page(), degrees)])[0]
    assert result.rotation == (360 - degrees) % 360
    assert sample_bill_lines(0, run=3)[0] in result.text
    assert result.warnings == [f"page turned {result.rotation} degrees clockwise to read it upright"]


@pytest.mark.parametrize("lean", [4.0, -3.0])
def test_a_page_a_few_degrees_askew_is_levelled_and_read_in_order(engine: OcrEngine, lean: float) -> None:
    skewed, _ = level_page(bill_page(1), -lean)  # turned counter-clockwise by ``lean``
    result = engine.read_pages([skewed])[0]
    assert result.skew == pytest.approx(lean, abs=0.7) and result.rotation == 0
    assert any("to level its lines" in warning for warning in result.warnings)
    printed = sample_bill_lines(1, run=3)
    assert [line.text for line in result.lines][:3] == printed[:3]
    assert result.fields["company"].text == printed[0] and "total" in result.fields
    for line in result.lines:  # boxes on the page as it came: leaning with its print, over ink
        (left, top), (right, bottom) = line.quad.min(axis=0).astype(int), line.quad.max(axis=0).astype(int)
        assert 0 <= left < right <= skewed.shape[1] and 0 <= top < bottom <= skewed.shape[0]
        assert skewed[top:bottom, left:right].min() < 128
        top_edge = line.quad[1] - line.quad[0]
        if top_edge[0] > 100:
            assert np.degrees(np.arctan2(-top_edge[1], top_edge[0])) == pytest.approx(lean, abs=1.0)
    assert result.level_matrix is not None and result.read_size[0] > skewed.shape[1]  # read on a grown canvas
    level = [onto_level(line.quad, result.level_matrix) for line in result.lines]  # as the key fields saw them
    assert all(abs(q[1, 1] - q[0, 1]) < 3 for q in level if q[1, 0] - q[0, 0] > 100)
    company = result.fields["company"]
    assert list(company.boxes[0]) == [round(float(v), 1) for v in result.lines[company.lines[0]].quad.reshape(-1)]


def test_an_upright_page_is_not_turned(engine: OcrEngine) -> None:
    page = bill_page(2)
    result = engine.read_pages([page])[0]
    assert result.rotation == 0 and result.skew == 0.0 and result.warnings == []
    assert result.level_matrix is None and result.read_size == (page.shape[1], page.shape[0])
