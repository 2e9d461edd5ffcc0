"""Line shapes for the detector: the shrunk core it learns, and the inverse (unclip).

The core keeps the middle ``CORE_HEIGHT`` of a line's height and loses ``SIDE_TRIM`` x
height at each end, so neighbouring lines on a dense receipt never touch in the target.
A short token (a lone quantity "1", a ":") would lose its whole width that way and never
be a target, so a core is at least ``MIN_CORE_WIDTH`` of its height wide (at most the
token's own width); unclipped, such a box comes out a little wider than its token.
"""
from __future__ import annotations

import cv2
import numpy as np

CORE_HEIGHT = 0.5
SIDE_TRIM = 0.25
MIN_CORE_WIDTH = 0.25


def quad_frame(quad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Centre, unit x/y axes, width and height of a (roughly rectangular) quad."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    x_axis = ((q[1] - q[0]) + (q[2] - q[3])) / 2
    width = float(np.linalg.norm(x_axis))
    ux = x_axis / max(width, 1e-6)
    uy = np.array([-ux[1], ux[0]], dtype=np.float32)
    height = float(((q[3] - q[0]) + (q[2] - q[1])) @ uy / 2)
    return q.mean(0), ux, uy, width, abs(height)


def rect_quad(centre: np.ndarray, ux: np.ndarray, uy: np.ndarray, width: float, height: float) -> np.ndarray:
    hw, hh = ux * width / 2, uy * height / 2
    return np.stack([centre - hw - hh, centre + hw - hh, centre + hw + hh, centre - hw + hh]).astype(np.float32)


def shrink(quad: np.ndarray) -> np.ndarray | None:
    centre, ux, uy, width, height = quad_frame(quad)
    core_w = max(width - 2 * SIDE_TRIM * height, min(width, MIN_CORE_WIDTH * height))
    if height < 2 or core_w < 1:
        return None
    return rect_quad(centre, ux, uy, core_w, height * CORE_HEIGHT)


def unclip(core: np.ndarray) -> np.ndarray:
    """The full line box around a predicted core (inverse of :func:`shrink`)."""
    centre, ux, uy, width, core_h = quad_frame(core)
    height = core_h / CORE_HEIGHT
    return rect_quad(centre, ux, uy, width + 2 * SIDE_TRIM * height, height)


def core_mask(shape: tuple[int, int], quads: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for quad in quads:
        core = shrink(quad)
        if core is not None:
            cv2.fillPoly(mask, [np.round(core).astype(np.int32)], 1)
    return mask


def order_quad(points: np.ndarray) -> np.ndarray:
    """Corners clockwise from top-left, whatever order cv2 gave them in."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    s, d = pts.sum(1), np.diff(pts, axis=1).ravel()
    return np.stack([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]])
