"""Scan and print damage shared by the detector's and the recognizer's training samples."""
from __future__ import annotations

import random

import cv2
import numpy as np


def scan_damage(image: np.ndarray, rng: random.Random, *, p_contrast: float, max_black: float,
                p_blur: float, max_blur: float, p_noise: float, max_noise: float) -> np.ndarray:
    """Faded or dark print (contrast squeeze), out-of-focus blur, sensor noise."""
    out = image
    if rng.random() < p_contrast:
        low, high = rng.uniform(0, max_black), rng.uniform(170, 255)
        out = (low + out.astype(np.float32) * (high - low) / 255.0).astype(np.uint8)
    if rng.random() < p_blur:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, max_blur))
    if rng.random() < p_noise:
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(3, max_noise), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out
