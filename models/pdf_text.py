"""A born-digital PDF page's own text, as lines in the rendered page's pixels.

Used in place of OCR only where it is present and sane:
- the page's text is visible (a scanner's invisible OCR layer is another engine's guess);
- pictures cover less than half the page (else the picture is the bill, and the text a caption);
- there is some text, and almost all of it is printable (a font without a Unicode map reads
  as control characters or U+FFFD).
Anything else returns None, and the page is read by the engine like any image.

Text that runs sideways on the displayed page (a /Rotate, or a rotated text matrix) is
turned upright: the page is then rendered with that extra turn, and the lines are in its pixels.
"""
from __future__ import annotations

import ctypes
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_CHARACTERS = 3
MAX_CHARACTERS = 100_000  # more is no bill; the picture is read instead, at the engine's pace
MIN_PRINTABLE_SHARE = 0.95
MAX_PICTURE_SHARE = 0.5
COLUMN_GAP = 1.5  # pieces of a row further apart than this many line heights are separate lines
_SPACES = re.compile(r"\s+")
Piece = tuple[str, float, float, float, float]  # text, left, top, right, bottom in pixels


@dataclass(frozen=True)
class TextLine:
    text: str
    quad: np.ndarray  # 4x2 float32, rendered page pixels, clockwise from top-left


@dataclass(frozen=True)
class PageText:
    lines: list[TextLine]
    turned: int  # degrees clockwise to render the page with, on top of its /Rotate, for upright text


def page_text(page: Any, scale: float) -> PageText | None:
    """``page``: a pypdfium2 page rendered at ``scale`` pixels a point. None: not usable."""
    import pypdfium2.raw as pdfium_c

    visible = any(pdfium_c.FPDFTextObj_GetTextRenderMode(item.raw) != pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE
                  for item in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_TEXT,), max_depth=4))
    if not visible:
        return None
    if _picture_share(page) >= MAX_PICTURE_SHARE:
        return None
    textpage = page.get_textpage()
    try:
        if textpage.count_chars() > MAX_CHARACTERS:
            return None
        turned = _upright_turn(page, textpage)
        width, height = math.ceil(page.get_width() * scale), math.ceil(page.get_height() * scale)
        size_px = (height, width) if turned in (90, 270) else (width, height)
        pieces: list[Piece] = []
        for index in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(index)
            text = _SPACES.sub(" ", textpage.get_text_bounded(left, bottom, right, top)).strip()
            if text:
                corners = [_to_pixels(page, size_px, turned, x, y) for x, y in ((left, top), (right, top), (right, bottom),
                                                                        (left, bottom))]
                xs, ys = [x for x, _ in corners], [y for _, y in corners]
                pieces.append((text, float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))))
    finally:
        textpage.close()
    characters = "".join(piece[0] for piece in pieces).replace(" ", "")
    if len(characters) < MIN_CHARACTERS:
        return None
    printable = sum(1 for ch in characters if ch != "\ufffd" and not unicodedata.category(ch).startswith("C"))
    if printable / len(characters) < MIN_PRINTABLE_SHARE:
        return None
    return PageText(_lines(pieces), turned)


def _upright_turn(page: Any, textpage: Any) -> int:
    """The clockwise turn that makes the page's text read left to right: from its characters'
    angle (PDF: counter-clockwise) and the page's /Rotate (clockwise)."""
    import pypdfium2.raw as pdfium_c

    angles = [pdfium_c.FPDFText_GetCharAngle(textpage.raw, i) for i in range(min(textpage.count_chars(), 200))]
    angles = [a for a in angles if a >= 0]
    angle = math.degrees(float(np.median(angles))) if angles else 0.0
    return round((angle - page.get_rotation()) / 90) % 4 * 90


def _picture_share(page: Any) -> float:
    import pypdfium2.raw as pdfium_c

    x0, y0, x1, y1 = page.get_cropbox()  # user space, as the pictures' positions (before /Rotate)
    covered = 0.0
    for item in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
        left, bottom, right, top = item.get_pos()
        covered += max(0.0, min(right, x1) - max(left, x0)) * max(0.0, min(top, y1) - max(bottom, y0))
    return covered / max((x1 - x0) * (y1 - y0), 1e-6)


def _to_pixels(page: Any, size_px: tuple[int, int], turned: int, x: float, y: float) -> tuple[int, int]:
    """PDF user space to the rendered bitmap, as PDFium renders it (crop box, /Rotate, the turn)."""
    import pypdfium2.raw as pdfium_c

    device_x, device_y = ctypes.c_int(), ctypes.c_int()
    pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, size_px[0], size_px[1], turned // 90, x, y, device_x, device_y)
    return device_x.value, device_y.value


def _lines(pieces: list[Piece]) -> list[TextLine]:
    """Pieces on one row, close enough, joined left to right; rows top to bottom."""
    rows: list[list[Piece]] = []
    for piece in sorted(pieces, key=lambda p: (p[2] + p[4]) / 2):
        middle = (piece[2] + piece[4]) / 2
        if rows and rows[-1][0][2] <= middle <= rows[-1][0][4]:
            rows[-1].append(piece)
        else:
            rows.append([piece])
    lines = []
    for row in rows:
        row.sort(key=lambda p: p[1])
        group = [row[0]]
        for piece in row[1:]:
            height = max(piece[4] - piece[2], group[-1][4] - group[-1][2], 1.0)
            if piece[1] - group[-1][3] > COLUMN_GAP * height:
                lines.append(_joined(group))
                group = []
            group.append(piece)
        lines.append(_joined(group))
    return lines


def _joined(group: list[Piece]) -> TextLine:
    left, top = min(p[1] for p in group), min(p[2] for p in group)
    right, bottom = max(p[3] for p in group), max(p[4] for p in group)
    quad = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
    return TextLine(" ".join(p[0] for p in group), quad)
