"""Synthetic receipt lines rendered with Debian's font packages, for the recognizer.

The real crops teach the receipts' look; these widen the fonts and the text the model has
seen (monospace thermal print, condensed sans, OCR-B, dot matrix) so that an unseen shop's
font is less of a surprise. Text comes from the training transcripts (re-mixed, digits
re-drawn) and from receipt-shaped generators (prices, dates, codes, phone numbers), with a
share of random printable strings so that rare symbols get examples. Samples are stored
like real crops (``STORE_HEIGHT`` high with a ``STORE_MARGIN`` margin) so the same
augmentation applies to both.

Fonts: ``apt-get install`` the packages in ``FONT_PACKAGES``; whatever of them is present
is used (DejaVu alone still works, with less variety). ``$BILLSTREAM_FONT_DIR`` points
elsewhere (a training machine without the packages, given a copy of the font files).
"""
from __future__ import annotations

import os
import random
import string
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.preprocess import resize_to_height
from models.recognition.charset import Charset
from models.training.recognition_data import STORE_HEIGHT, STORE_MARGIN, LineSample

FONT_PACKAGES = (
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-liberation2", "fonts-freefont-ttf", "fonts-noto-mono",
    "fonts-urw-base35", "fonts-inconsolata", "fonts-hack", "fonts-ocr-a", "fonts-ocr-b", "fonts-courier-prime",
    "fonts-jetbrains-mono", "fonts-roboto-unhinted", "fonts-open-sans", "fonts-anonymous-pro",
)
FONT_ROOT = Path(os.environ.get("BILLSTREAM_FONT_DIR") or "/usr/share/fonts")
# Symbol, dingbat, maths and script faces are not receipt print; OCRBE/OCRBX draw boxed glyphs.
EXCLUDED_FONTS = ("D050000L", "StandardSymbols", "Math", "Z003", "OCRBE", "OCRBX")
RENDER_SIZE = 40


def find_fonts(root: Path = FONT_ROOT) -> list[Path]:
    found = sorted(p for pattern in ("*.ttf", "*.otf") for p in root.rglob(pattern))
    return [p for p in found if not any(name in p.name for name in EXCLUDED_FONTS)]


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


class TextSource:
    """Receipt-like strings: transcripts re-mixed, generated fields, random printables."""

    def __init__(self, transcripts: Sequence[str], rng: random.Random) -> None:
        self.transcripts = [t for t in transcripts if t.strip()]
        self.words = sorted({w for t in self.transcripts for w in t.split() if not any(c.isdigit() for c in w)})
        self.rng = rng

    def __call__(self) -> str:
        roll = self.rng.random()
        if roll < 0.35 and self.transcripts:
            return self._redraw_digits(self.rng.choice(self.transcripts))
        if roll < 0.55 and self.words:
            return " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(1, 6)))
        if roll < 0.9:
            return self._field()
        pool = string.ascii_uppercase * 3 + string.digits * 2 + string.punctuation + string.ascii_lowercase
        return "".join(self.rng.choice(pool + " ") for _ in range(self.rng.randint(1, 24))).strip() or "X"

    def _redraw_digits(self, text: str) -> str:
        if self.rng.random() < 0.5:
            return text
        return "".join(self.rng.choice(string.digits) if c.isdigit() else c for c in text)

    def _money(self) -> str:
        value = self.rng.choice([self.rng.uniform(0, 20), self.rng.uniform(0, 500), self.rng.uniform(0, 9999)])
        text = f"{value:,.2f}" if self.rng.random() < 0.3 else f"{value:.2f}"
        return self.rng.choice(["", "RM", "RM ", "$", "-"]) + text

    def _field(self) -> str:
        r, d = self.rng, lambda n: "".join(self.rng.choice(string.digits) for _ in range(n))
        word = (lambda: r.choice(self.words)) if self.words else (lambda: "ITEM")
        day, month, year = r.randint(1, 31), r.randint(1, 12), r.choice([r.randint(2015, 2026), r.randint(15, 26)])
        choices = [
            lambda: f"{day:02d}/{month:02d}/{year}",
            lambda: f"{day:02d}-{month:02d}-{year}",
            lambda: f"{day} {r.choice(['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'])} {year}",
            lambda: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}" + (f":{r.randint(0, 59):02d}" if r.random() < 0.5 else ""),
            lambda: f"{r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['AM', 'PM'])}",
            lambda: f"{word()} {word()}".ljust(r.randint(10, 24)) + self._money(),
            lambda: f"{r.randint(1, 20)} X {self._money()}" + (f" {self._money()}" if r.random() < 0.6 else ""),
            lambda: f"{r.choice(['TOTAL', 'SUBTOTAL', 'SUB TOTAL', 'CASH', 'CHANGE', 'ROUNDING', 'GST 6%', 'NET TOTAL', 'TOTAL (RM)', 'AMOUNT'])}{r.choice([' ', ' : ', ': ', '  '])}{self._money()}",
            lambda: f"{r.choice(['TEL', 'FAX', 'TEL NO', 'H/P'])}{r.choice([': ', ' : ', ' '])}0{r.randint(1, 9)}-{d(r.randint(3, 4))} {d(4)}",
            lambda: f"{r.choice(['INVOICE NO', 'RECEIPT #', 'BILL NO', 'DOC NO', 'CASHIER', 'TABLE'])}{r.choice([': ', ' : ', ':'])}{r.choice(['', 'CS', 'INV', 'T'])}{d(r.randint(3, 10))}",
            lambda: f"({d(r.randint(5, 7))}-{r.choice(string.ascii_uppercase)})",
            lambda: f"{r.choice(['GST REG NO', 'GST ID', 'CO REG', 'SST NO'])}: {d(12)}",
            lambda: f"{d(r.randint(8, 13))} {word()}",
            lambda: f"{r.randint(1, 99)}.{r.randint(0, 9)}{r.choice(['', '%', 'KG', 'G', 'ML'])} {word()}",
        ]
        return r.choice(choices)()


def _dot_matrix(ink: np.ndarray, rng: random.Random) -> np.ndarray:
    """Keep the ink only on a grid of dots, as a dot-matrix or worn thermal head prints it."""
    pitch = rng.randint(3, 5)
    yy, xx = np.mgrid[: ink.shape[0], : ink.shape[1]]
    dots = ((yy % pitch) < pitch - 1) & ((xx % pitch) < pitch - 1)
    out = np.where(dots, ink, 0).astype(np.uint8)
    return cv2.GaussianBlur(out, (3, 3), 0.7)


def _fade(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Thermal fade: ink strength varying smoothly along the line."""
    w = image.shape[1]
    knots = np.array([rng.uniform(0.35, 1.0) for _ in range(4)], np.float32)
    profile = np.interp(np.arange(w), np.linspace(0, w - 1, len(knots)), knots).astype(np.float32)
    ink = (255 - image.astype(np.float32)) * profile[None, :]
    return (255 - ink).clip(0, 255).astype(np.uint8)


def render_line(text: str, font_path: Path, rng: random.Random) -> np.ndarray | None:
    """One line, ``STORE_HEIGHT`` high with the stored margin; None where the font has no glyphs."""
    font = _font(str(font_path), RENDER_SIZE)
    _, cap_top, _, descender = font.getbbox("HAg")  # cap top to descender: how GT boxes are drawn
    top, bottom = int(cap_top), int(descender)  # whole pixels for a TrueType font already
    offset = RENDER_SIZE // 2
    spacing = rng.choice([0, 0, 0, 1, 2, 4]) if rng.random() < 0.3 else 0
    widths = [font.getlength(c) + spacing for c in text]
    width = int(sum(widths)) + 8
    canvas = Image.new("L", (max(width, 8), int(bottom) + 2 * offset), 0)
    draw = ImageDraw.Draw(canvas)
    if spacing:
        x = 4.0
        for c, advance in zip(text, widths):
            draw.text((x, offset), c, font=font, fill=255)
            x += advance
    else:
        draw.text((4, offset), text, font=font, fill=255)
    ink = np.asarray(canvas)
    columns = np.flatnonzero(ink.max(axis=0) > 64)
    if columns.size == 0:
        return None
    if rng.random() < 0.15:
        ink = _dot_matrix(ink, rng)
    elif rng.random() < 0.3:
        kernel = np.ones((2, 2), np.uint8)
        ink = cv2.dilate(ink, kernel)  # bold print
    text_h = bottom - top
    pad = int(round(STORE_MARGIN * text_h))
    y0, y1 = top + offset - pad, bottom + offset + pad
    x0, x1 = columns[0] - pad, columns[-1] + 1 + pad
    padded = cv2.copyMakeBorder(ink, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = 255 - padded[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
    if rng.random() < 0.3:
        crop = _fade(crop, rng)
    return resize_to_height(crop, STORE_HEIGHT, max_width=2048)


def synthetic_samples(count: int, transcripts: Sequence[str], charset: Charset, seed: int,
                      fonts: Sequence[Path] | None = None) -> list[LineSample]:
    """``count`` rendered lines, the same ones for the same seed, fonts and transcripts."""
    fonts = list(fonts) if fonts is not None else find_fonts()
    if not fonts:
        raise FileNotFoundError(f"no fonts under {FONT_ROOT}: apt-get install {' '.join(FONT_PACKAGES)}")
    rng = random.Random(seed)
    source = TextSource(transcripts, random.Random(seed + 1))
    samples: list[LineSample] = []
    while len(samples) < count:
        text = charset.normalize(source())
        if not text.strip():
            continue
        image = render_line(text.strip(), rng.choice(fonts), rng)
        if image is not None:
            samples.append(LineSample(image, text.strip()))
    return samples
