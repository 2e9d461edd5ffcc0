"""Line-crop samples for the recognizer: real GT crops from receipts plus augmentation.

Crops are cut once with a generous margin (0.2 x line height) and kept in memory; each
epoch trims a random margin from every side, so the model learns to read boxes as loose
or tight as a detector gives it.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from models.preprocess import crop_quad, read_gray, resize_to_height
from models.recognition.charset import Charset
from models.training.augment import scan_damage
from models.training.receipts import Receipt

STORE_MARGIN = 0.2
STORE_HEIGHT = 48
INFER_MARGIN = 0.08


@dataclass
class LineSample:
    image: np.ndarray  # uint8, STORE_HEIGHT high, STORE_MARGIN margin around the text box
    text: str


def extract_samples(receipts: list[Receipt], charset: Charset) -> list[LineSample]:
    samples = []
    for receipt in receipts:
        gray = read_gray(str(receipt.image_path))
        for line in receipt.lines:
            text = charset.normalize(line.text)
            if not text:
                continue
            crop = crop_quad(gray, line.quad, margin=STORE_MARGIN)
            if crop.shape[0] < 4 or crop.shape[1] < 4:
                continue
            samples.append(LineSample(resize_to_height(crop, STORE_HEIGHT, max_width=2048), text))
    return samples


def fits_line(detected: np.ndarray, truth: np.ndarray, tolerance: float = 0.5) -> bool:
    """Whether a detected box spans the same characters as an annotated line: its ends within
    ``tolerance`` line heights of the line's (about a character) and its middle on the line's
    row. Looser boxes may cut a character off or take a neighbour in, and the annotated text
    would then be a wrong label for them."""
    dx0, dy0, dx1, dy1 = detected[:, 0].min(), detected[:, 1].min(), detected[:, 0].max(), detected[:, 1].max()
    tx0, ty0, tx1, ty1 = truth[:, 0].min(), truth[:, 1].min(), truth[:, 0].max(), truth[:, 1].max()
    height = max(ty1 - ty0, 1.0)
    return bool(abs(dx0 - tx0) <= tolerance * height and abs(dx1 - tx1) <= tolerance * height
                and abs((dy0 + dy1) - (ty0 + ty1)) / 2 <= 0.25 * height)


def detected_samples(receipts: list[Receipt], charset: Charset,
                     detect: Callable[[np.ndarray], list[np.ndarray]]) -> list[LineSample]:
    """Crops cut along the detector's own boxes, labelled with the annotated line each one
    fits: the boxes a served page gives the recognizer differ from the annotated ones line by
    line (a start cut closer, a taller or shifted box), and reading them is what serving asks."""
    samples = []
    for receipt in receipts:
        gray = read_gray(str(receipt.image_path))
        quads = detect(gray)
        for line in receipt.lines:
            text = charset.normalize(line.text)
            fitting = [q for q in quads if fits_line(q, line.quad)]
            if not text or len(fitting) != 1:
                continue
            crop = crop_quad(gray, fitting[0], margin=STORE_MARGIN)
            if crop.shape[0] >= 4 and crop.shape[1] >= 4:
                samples.append(LineSample(resize_to_height(crop, STORE_HEIGHT, max_width=2048), text))
    return samples


def trim_margin(sample: np.ndarray, rng: random.Random | None) -> np.ndarray:
    """Cut the stored margin down to a random (training) or the inference margin."""
    h, w = sample.shape
    text_h = h / (1 + 2 * STORE_MARGIN)
    stored = STORE_MARGIN * text_h

    def keep(max_keep: float) -> int:
        target = rng.uniform(-0.02, max_keep) * text_h if rng else INFER_MARGIN * text_h
        return int(round(np.clip(stored - target, 0, stored)))

    top, bottom = keep(0.18), keep(0.18)
    left, right = keep(0.2), keep(0.2)
    return sample[top:h - bottom or h, left:w - right or w]


def augment(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Receipt-like damage: fade, blur, noise, JPEG artefacts, stroke width, slight shear."""
    out = image
    if rng.random() < 0.3:
        shear = rng.uniform(-0.15, 0.15)
        h, w = out.shape
        matrix = np.array([[1, shear, -shear * h / 2], [0, 1, 0]], dtype=np.float32)
        out = cv2.warpAffine(out, matrix, (w, h), borderValue=255)
    if rng.random() < 0.25:
        kernel = np.ones((2, 2), np.uint8)
        out = cv2.erode(out, kernel) if rng.random() < 0.5 else cv2.dilate(out, kernel)
    out = scan_damage(out, rng, p_contrast=0.4, max_black=90, p_blur=0.25, max_blur=1.0, p_noise=0.25, max_noise=15)
    if rng.random() < 0.2:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 80)])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is not None:
            out = decoded
    return out


WIDTH_JITTER = (0.8, 1.2)


def prepare(sample: LineSample, height: int, max_width: int, rng: random.Random | None,
            width_jitter: tuple[float, float] = WIDTH_JITTER) -> np.ndarray:
    """Trim, augment (training, when ``rng``) and resize one crop; ``width_jitter`` is the range
    of the horizontal squeeze or stretch applied to 30% of training crops (condensed print)."""
    image = trim_margin(sample.image, rng)
    if rng is not None:
        image = augment(image, rng)
        if rng.random() < 0.3:
            h, w = image.shape
            image = cv2.resize(image, (max(4, int(w * rng.uniform(*width_jitter))), h))
    return resize_to_height(image, height, max_width=max_width)


Batch = tuple[np.ndarray, list[list[int]], list[str], np.ndarray]  # images N x H x W uint8, targets, texts, widths


def pack(images: list[np.ndarray], texts: list[str], charset: Charset, height: int) -> Batch:
    width = -(-max(im.shape[1] for im in images) // 16) * 16
    array = np.full((len(images), height, width), 255, np.uint8)
    for row, im in enumerate(images):
        array[row, :, :im.shape[1]] = im
    return array, [charset.encode(t) for t in texts], texts, np.array([im.shape[1] for im in images])


def width_groups(samples: list[LineSample], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Sample indices in batches of similar width (little padding), shuffled when ``rng``."""
    order = list(range(len(samples)))
    if rng is not None:
        rng.shuffle(order)
    chunk = batch_size * 32
    groups: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: samples[i].image.shape[1])
        groups += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    return groups


def batches(samples: list[LineSample], charset: Charset, *, batch_size: int, height: int, max_width: int,
            rng: random.Random | None) -> Iterator[Batch]:
    """Width-bucketed batches, built in this process (validation, small runs)."""
    for group in width_groups(samples, batch_size, rng):
        images = [prepare(samples[i], height, max_width, rng) for i in group]
        yield pack(images, [samples[i].text for i in group], charset, height)
