"""One-to-one matching of predicted line boxes to annotated ones (IoU of their bounding rectangles)."""
from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()
    bx0, by0, bx1, by1 = b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(predicted: list[np.ndarray], truth: list[np.ndarray], threshold: float = 0.5
                ) -> list[tuple[int, int, float]]:
    """Greedy in prediction order: each prediction takes its best unused truth at IoU ≥ threshold.
    Returns (prediction index, truth index, IoU)."""
    used: set[int] = set()
    pairs = []
    for i, p in enumerate(predicted):
        best, best_j = 0.0, -1
        for j, t in enumerate(truth):
            if j not in used:
                iou = box_iou(p, t)
                if iou > best:
                    best, best_j = iou, j
        if best >= threshold:
            used.add(best_j)
            pairs.append((i, best_j, best))
    return pairs


def box_scores(matched: int, predicted: int, truth: int) -> dict[str, float]:
    """Precision, recall and F1 of line boxes from the counts :func:`detection_f1` gives."""
    precision, recall = matched / max(predicted, 1), matched / max(truth, 1)
    return {"box_precision": precision, "box_recall": recall,
            "box_f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def detection_f1(predicted: list[np.ndarray], truth: list[np.ndarray], threshold: float = 0.5) -> tuple[int, int, int]:
    """(matched, predicted, truth) for precision/recall/F1 of line boxes."""
    return len(match_boxes(predicted, truth, threshold)), len(predicted), len(truth)
