from typing import Any

import numpy as np
import pytest
import torch

from models.detection.geometry import core_mask, order_quad, shrink, unclip
from models.detection.matching import match_boxes
from models.detection.net import DetectorConfig, build_detector
from models.detection.postprocess import BoxCalibration, DetectedLine, boxes_from_map, join_overlapping, reading_order
from models.manifest import model_version
from models.training.calibrate_boxes import fit_calibration


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_unclip_inverts_shrink() -> None:
    quad = rect(10, 20, 210, 50)
    core = shrink(quad)
    assert core is not None
    np.testing.assert_allclose(unclip(core), quad, atol=1e-3)
    assert shrink(rect(0, 0, 5, 1.5)) is None  # too thin to have a core


@pytest.mark.parametrize("width", [6.0, 12.0, 20.0])
def test_a_lone_short_token_keeps_a_core(width: float) -> None:
    """A quantity "1" or a ":" 30 px high is a target too, and unclips to a box around it."""
    core = shrink(rect(100, 0, 100 + width, 30))
    assert core is not None
    core_width = float(core[:, 0].max() - core[:, 0].min())
    assert core_width == pytest.approx(min(width, 0.25 * 30), abs=1e-3)
    box = unclip(core)
    assert box[:, 0].min() < 100 and box[:, 0].max() > 100 + width  # covers the token, a little wider
    mask = core_mask((40, 200), [rect(100, 5, 100 + width, 35)])
    assert mask.sum() > 0


def test_cores_of_adjacent_lines_do_not_touch() -> None:
    mask = core_mask((100, 300), [rect(10, 10, 290, 40), rect(10, 40, 290, 70)])
    rows = np.asarray(mask.any(1))
    assert rows[25] and rows[55] and not rows[40]


def test_boxes_from_map_recovers_line_boxes_in_page_coordinates() -> None:
    truth = [rect(20, 10, 180, 34), rect(30, 50, 120, 70)]
    prob = core_mask((100, 200), truth).astype(np.float32) * 0.95
    found = boxes_from_map(prob, scale=2.0, min_score=0.5)
    assert len(found) == 2
    for line, quad in zip(found, truth):
        np.testing.assert_allclose(line.quad, quad * 2, atol=4.0)
        assert line.score == pytest.approx(0.95, abs=1e-3)


def test_calibration_resizes_and_shifts_a_box_in_units_of_its_height() -> None:
    calibration = BoxCalibration(height=0.8, width_pad=-0.5, shift=-0.1)
    np.testing.assert_allclose(calibration.apply(rect(100, 100, 300, 140)), rect(110, 100, 290, 132), atol=1e-4)
    np.testing.assert_allclose(BoxCalibration().apply(rect(3, 4, 50, 20)), rect(3, 4, 50, 20), atol=1e-4)
    assert BoxCalibration.from_dict(calibration.to_dict()) == calibration
    assert BoxCalibration.from_dict(None) == BoxCalibration()


def test_boxes_from_map_applies_the_calibration() -> None:
    prob = core_mask((100, 200), [rect(20, 10, 180, 34)]).astype(np.float32) * 0.95
    plain = boxes_from_map(prob, scale=1.0)[0].quad
    tight = boxes_from_map(prob, scale=1.0, calibration=BoxCalibration(height=0.5))[0].quad
    height = lambda q: float(q[3, 1] - q[0, 1])  # noqa: E731
    assert height(tight) == pytest.approx(height(plain) / 2, abs=1e-3)
    assert tight[:, 1].mean() == pytest.approx(plain[:, 1].mean(), abs=1e-3)


def test_fitted_calibration_maps_loose_boxes_onto_annotated_ones_despite_wrong_matches() -> None:
    rng = np.random.default_rng(0)
    truth = [rect(x, y, x + w, y + 30) for x, y, w in zip(rng.uniform(0, 500, 40), rng.uniform(0, 900, 40),
                                                           rng.uniform(80, 400, 40))]
    loose = [rect(q[0, 0] - 6, q[0, 1] - 3, q[2, 0] + 6, q[2, 1] + 5) for q in truth]  # 38 high, 12 wider, 1 low
    merged = [rect(0, 0, 600, 90)] * 5  # a few wrong matches must not move the medians
    fitted = fit_calibration(list(zip(loose + merged, truth + truth[:5])))
    assert fitted.height == pytest.approx(30 / 38, abs=1e-3)
    assert fitted.width_pad == pytest.approx(-12 / 38, abs=1e-3)
    assert fitted.shift == pytest.approx(-1 / 38, abs=1e-3)
    for q, t in zip(loose, truth):
        np.testing.assert_allclose(fitted.apply(q), t, atol=0.05)
    with pytest.raises(ValueError):
        fit_calibration([])


def test_matching_is_one_to_one() -> None:
    truth = [rect(0, 0, 100, 20), rect(0, 30, 100, 50)]
    pairs = match_boxes([rect(1, 1, 99, 21), rect(0, 0, 100, 20), rect(0, 31, 100, 51)], truth)
    assert [(i, j) for i, j, _ in pairs] == [(0, 0), (2, 1)]


def test_a_new_calibration_is_a_new_model_version() -> None:
    manifest: dict[str, Any] = {"detector": {"sha256": "a" * 64, "postprocess": {"threshold": 0.3}},
                "recognizer": {"sha256": "b" * 64, "input": {"height": 32}}}
    before = model_version(manifest)
    manifest["detector"]["postprocess"]["calibration"] = BoxCalibration(height=0.85).to_dict()
    assert model_version(manifest) != before
    assert model_version(manifest).startswith("aaaaaaaa.bbbbbbbb.")


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


def test_overlapping_pieces_of_one_row_are_joined_into_one_line() -> None:
    pieces = [DetectedLine(rect(20, 10, 120, 34), 0.9), DetectedLine(rect(110, 11, 200, 33), 0.7)]
    joined = join_overlapping(pieces)
    assert len(joined) == 1
    np.testing.assert_allclose(joined[0].quad, rect(20, 10, 200, 34))
    assert joined[0].score == pytest.approx(0.7)


def test_lines_apart_or_on_other_rows_stay_apart() -> None:
    apart = [DetectedLine(rect(20, 10, 120, 34), 0.9), DetectedLine(rect(125, 10, 200, 34), 0.9)]
    rows = [DetectedLine(rect(20, 10, 120, 34), 0.9), DetectedLine(rect(100, 30, 200, 54), 0.9)]
    inside = [DetectedLine(rect(20, 10, 200, 34), 0.9), DetectedLine(rect(60, 10, 80, 34), 0.9)]
    for lines in (apart, rows, inside):
        assert join_overlapping(lines) == lines


def test_a_line_the_map_parted_at_a_wide_space_comes_back_whole() -> None:
    prob = np.zeros((60, 260), np.float32)
    prob[20:32, 20:100] = 0.95   # cores 12 high: their boxes reach 6 past each end
    prob[20:32, 106:180] = 0.95  # 6 apart: the boxes overlap
    prob[20:32, 215:250] = 0.95  # 35 apart: a line of its own
    found = boxes_from_map(prob, scale=1.0)
    assert len(found) == 2
    assert found[0].quad[:, 0].min() == pytest.approx(14, abs=1.5)
    assert found[0].quad[:, 0].max() == pytest.approx(186, abs=1.5)
    assert found[1].quad[:, 0].min() > 200
