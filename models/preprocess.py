"""Pure OpenCV preprocessing: page clean-up, line crops, height normalisation, batching.

Every page step is a function with a switch in :class:`PreprocessConfig`, so each can be
measured on the validation fold and dropped when it does not help.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    clahe: bool = False
    denoise: bool = False
    deskew: bool = False


def read_gray(path: str) -> np.ndarray:
    """A training/evaluation image from disk as 8-bit grayscale (services use models.intake)."""
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def apply_clahe(gray: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)


def denoise(gray: np.ndarray) -> np.ndarray:
    return cv2.medianBlur(gray, 3)


def estimate_skew(gray: np.ndarray, max_angle: float = 10.0) -> float:
    """Page skew in degrees: the median angle of long Hough segments through text rows smeared
    into bars (0 when none is found within ``max_angle``)."""
    small = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) if max(gray.shape) > 1600 else gray
    ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (25, 1)))
    lines = cv2.HoughLinesP(ink, 1, np.pi / 720, threshold=100, minLineLength=small.shape[1] // 4, maxLineGap=5)
    if lines is None:
        return 0.0
    angles = [np.degrees(np.arctan2(y2 - y1, x2 - x1)) for x1, y1, x2, y2 in lines.reshape(-1, 4)]
    angles = [a for a in angles if abs(a) <= max_angle]
    return float(np.median(angles)) if angles else 0.0


def rotate(gray: np.ndarray, angle: float) -> np.ndarray:
    h, w = gray.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(gray, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)


def prepare_page(image: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    gray = to_gray(image)
    if config.deskew:
        angle = estimate_skew(gray)
        if abs(angle) > 0.2:
            gray = rotate(gray, angle)
    if config.clahe:
        gray = apply_clahe(gray)
    if config.denoise:
        gray = denoise(gray)
    return gray


def crop_quad(gray: np.ndarray, quad: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """The line under a quadrilateral (4x2, clockwise from top-left), rectified, with a
    margin of ``margin`` x line height on every side."""
    quad = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    side = lambda a, b: float(np.linalg.norm(quad[a] - quad[b]))  # noqa: E731
    width = max(int(round(max(side(1, 0), side(2, 3)))), 2)
    height = max(int(round(max(side(3, 0), side(2, 1)))), 2)
    pad = float(margin * height)
    if abs(quad[0, 1] - quad[1, 1]) < 1 and abs(quad[0, 0] - quad[3, 0]) < 1:  # axis-aligned: slice
        x0, y0 = quad.min(0) - pad
        x1, y1 = quad.max(0) + pad
        h, w = gray.shape[:2]
        xs, ys = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
        xe, ye = int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
        if xe - xs >= 2 and ye - ys >= 2:
            return gray[ys:ye, xs:xe]
    target = np.array([[pad, pad], [pad + width, pad], [pad + width, pad + height], [pad, pad + height]],
                      dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    size = (int(round(width + 2 * pad)), int(round(height + 2 * pad)))
    return cv2.warpPerspective(gray, matrix, size, flags=cv2.INTER_LINEAR, borderValue=255)


def resize_to_height(crop: np.ndarray, height: int = 32, max_width: int = 1024, min_width: int = 8) -> np.ndarray:
    h, w = crop.shape[:2]
    new_w = int(np.clip(round(w * height / max(h, 1)), min_width, max_width))
    interpolation = cv2.INTER_AREA if h > height else cv2.INTER_CUBIC
    return cv2.resize(crop, (new_w, height), interpolation=interpolation)


def pad_to_multiple(gray: np.ndarray, multiple: int, pad_value: int = 255) -> np.ndarray:
    """Pad bottom and right with paper so both sides are multiples of ``multiple``."""
    h, w = gray.shape[:2]
    padded = np.full((-(-h // multiple) * multiple, -(-w // multiple) * multiple), pad_value, np.uint8)
    padded[:h, :w] = gray
    return padded


def batch_by_width(lines: list[np.ndarray], *, bucket: int = 32, max_batch: int = 64,
                   pad_value: int = 255) -> list[tuple[list[int], np.ndarray]]:
    """Group same-height line images of similar widths; pad each group to a common width.

    Returns (original indices, uint8 array (N, H, W)) per batch, widths rounded up to
    ``bucket`` so padding stays small and shapes repeat.
    """
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
    batches: list[tuple[list[int], np.ndarray]] = []
    for start in range(0, len(order), max_batch):
        indices = order[start:start + max_batch]
        width = -(-max(lines[i].shape[1] for i in indices) // bucket) * bucket
        height = lines[indices[0]].shape[0]
        array = np.full((len(indices), height, width), pad_value, dtype=np.uint8)
        for row, i in enumerate(indices):
            array[row, :, :lines[i].shape[1]] = lines[i]
        batches.append((indices, array))
    return batches
