"""A page a few degrees askew, levelled from the detector's own boxes.

The detector draws each line as a rotated rectangle, so the page's skew is already in its
output: the width-weighted median angle of the long lines. Only a page whose lines lean by
more than ``MIN_ANGLE`` is turned (on a canvas grown so no corner is cut) and detected
again; an upright page costs a median. Skew makes rows of a long receipt interleave in
reading order and bends line crops; a Hough estimate over the whole page found the same
angles at a quarter of the engine's time (``bench.preprocess_ablation --skew``). The page
is read level, and its boxes are mapped back onto the page as it came (:func:`unlevel`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from models.detection.geometry import quad_frame
from models.detection.postprocess import DetectedLine

MIN_ANGLE = 1.0  # degrees: below this, receipts as photographed read as well unturned
MAX_ANGLE = 15.0  # beyond this the boxes are not a skewed page's lines (a quarter turn is orientation's job)
LONG_LINE = 3.0  # width / height: only lines this long say which way the page leans
MIN_LINES = 3


def line_skew(lines: list[DetectedLine]) -> float:
    """Degrees the lines lean, counter-clockwise as the page shows them (0 without enough long lines)."""
    angles, weights = [], []
    for line in lines:
        _, ux, _, width, height = quad_frame(line.quad)
        if width >= LONG_LINE * max(height, 1.0):
            angles.append(float(np.degrees(np.arctan2(-ux[1], ux[0]))))
            weights.append(width)
    if len(angles) < MIN_LINES:
        return 0.0
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(angles)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def level_page(page: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The page turned ``angle`` degrees clockwise about its centre, on a white canvas grown to
    fit, and the 2x3 affine map from the page's pixels to the canvas's."""
    h, w = page.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin)))
    matrix[:, 2] += ((size[0] - w) / 2, (size[1] - h) / 2)
    return cv2.warpAffine(page, matrix, size, flags=cv2.INTER_LINEAR, borderValue=255), matrix


def onto_level(quad: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A quad on the page as it came, on the levelled canvas (``matrix``: from :func:`level_page`)."""
    points = np.asarray(quad, np.float32).reshape(4, 2)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def unlevel(quad: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A quad on the levelled canvas, back on the page as it came (``matrix``: from :func:`level_page`)."""
    return onto_level(quad, cv2.invertAffineTransform(matrix))


@dataclass(frozen=True)
class Levelled:
    angle: float  # degrees turned clockwise; 0: the page was level enough and is unchanged
    page: np.ndarray
    lines: list[DetectedLine]
    matrix: np.ndarray | None  # page → levelled canvas; None when not turned


def level(page: np.ndarray, lines: list[DetectedLine], detect: Callable[[np.ndarray], list[DetectedLine]]
          ) -> Levelled:
    """The page levelled and its lines detected again, or as it is when level enough."""
    angle = line_skew(lines)
    if not MIN_ANGLE <= abs(angle) <= MAX_ANGLE:
        return Levelled(0.0, page, lines, None)
    levelled, matrix = level_page(page, angle)
    return Levelled(angle, levelled, detect(levelled), matrix)
