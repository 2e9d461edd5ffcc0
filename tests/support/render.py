"""Render a bill image from text lines, for tests that need a page with known content."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font


def render_bill(lines: list[str], *, size: int = 22, width: int = 560, fmt: str = "PNG") -> bytes:
    face = font(size)
    line_height = int(size * 1.6)
    page = Image.new("L", (width, 40 + line_height * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for row, text in enumerate(lines):
        draw.text((24, 20 + row * line_height), text, fill=0, font=face)
    buffer = io.BytesIO()
    page.save(buffer, fmt)
    return buffer.getvalue()
