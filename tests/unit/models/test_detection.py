import numpy as np
import pytest
import torch

from models.detection.geometry import core_mask, order_quad, shrink, unclip
from models.detection.net import DetectorConfig, build_detector
from models.detection.postprocess import DetectedLine, boxes_from_map, reading_order


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_unclip_inverts_shrink() -> None:
    quad = rect(10, 20, 210, 50)
    np.testing.assert_allclose(unclip(shrink(quad)), quad, atol=1e-3)
    assert shrink(rect(0, 0, 5, 30)) is None  # too short to have a core


def test_cores_of_adjacent_lines_do_not_touch() -> None:
    mask = core_mask((100, 300), [rect(10, 10, 290, 40), rect(10, 40, 290, 70)])
    rows = mask.any(1)
    assert rows[25] and rows[55] and not rows[40]


def test_boxes_from_map_recovers_line_boxes_in_page_coordinates() -> None:
    truth = [rect(20, 10, 180, 34), rect(30, 50, 120, 70)]
    prob = core_mask((100, 200), truth).astype(np.float32) * 0.95
    found = boxes_from_map(prob, scale=2.0, min_score=0.5)
    assert len(found) == 2
    for line, quad in zip(found, truth):
        np.testing.assert_allclose(line.quad, quad * 2, atol=4.0)
        assert line.score == pytest.approx(0.95, abs=1e-3)


def test_low_scores_and_specks_are_dropped() -> None:
    prob = np.zeros((50, 100), np.float32)
    prob[10:14, 10:60] = 0.35   # above threshold, mean below min_score
    prob[30, 30] = 0.99          # a speck
    assert boxes_from_map(prob, scale=1.0, threshold=0.3, min_score=0.5) == []
    with pytest.raises(ValueError):
        boxes_from_map(np.zeros((2, 2, 2)), scale=1.0)


def test_reading_order_is_rows_top_down_then_left_to_right() -> None:
    boxes = {"total": rect(10, 100, 80, 120), "amount": rect(200, 102, 260, 122), "title": rect(50, 10, 250, 35),
             "date": rect(10, 50, 100, 70)}
    lines = [DetectedLine(quad, 1.0) for quad in boxes.values()]
    names = {id(line): name for line, name in zip(lines, boxes)}
    ordered = reading_order(list(reversed(lines)))
    assert [names[id(line)] for line in ordered] == ["title", "date", "total", "amount"]


def test_order_quad_is_clockwise_from_top_left() -> None:
    shuffled = np.array([[10, 5], [0, 5], [10, 0], [0, 0]], np.float32)
    np.testing.assert_array_equal(order_quad(shuffled), rect(0, 0, 10, 5))


def test_detector_keeps_input_size_and_rejects_odd_sizes() -> None:
    model = build_detector(DetectorConfig()).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 64, 96)).shape == (1, 1, 64, 96)
        with pytest.raises(ValueError, match="multiples of 16"):
            model(torch.rand(1, 1, 60, 96))
