"""Detector samples: receipt pages at the detector's width with their line-core masks;
random scaled crops (and ink/contrast damage) for training."""
from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np

from models.detection.geometry import core_mask
from models.preprocess import read_gray
from models.training.augment import scan_damage
from models.training.receipts import Receipt


@dataclass
class PageSample:
    image: np.ndarray  # uint8 page resized to the detector width
    mask: np.ndarray   # uint8 0/1 line cores at the same size


def load_pages(receipts: list[Receipt], page_width: int) -> list[PageSample]:
    pages = []
    for receipt in receipts:
        gray = read_gray(str(receipt.image_path))
        scale = page_width / gray.shape[1]
        resized = cv2.resize(gray, (page_width, max(16, round(gray.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        quads = [line.quad * scale for line in receipt.lines]
        pages.append(PageSample(resized, core_mask(resized.shape, quads)))
    return pages


def random_crop(page: PageSample, size: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    scale = rng.uniform(0.6, 1.4)
    window = int(round(size / scale))
    h, w = page.image.shape
    image = np.full((max(h, window), max(w, window)), 255, np.uint8)
    mask = np.zeros_like(image)
    image[:h, :w], mask[:h, :w] = page.image, page.mask
    y = rng.randint(0, image.shape[0] - window)
    x = rng.randint(0, image.shape[1] - window)
    crop = cv2.resize(image[y:y + window, x:x + window], (size, size), interpolation=cv2.INTER_AREA)
    target = cv2.resize(mask[y:y + window, x:x + window], (size, size), interpolation=cv2.INTER_NEAREST)
    crop = scan_damage(crop, rng, p_contrast=0.4, max_black=80, p_blur=0.3, max_blur=1.2, p_noise=0.3, max_noise=12)
    return crop, target

