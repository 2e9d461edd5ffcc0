"""Safe image intake: bytes → 8-bit grayscale page, or a typed rejection with its code.

Limits (bytes, pixels, side) are checked from the file header *before* the full decode,
so a decompression bomb costs a few header bytes, not gigabytes. The format comes from
magic bytes. EXIF orientation is applied; CMYK, 16-bit, alpha (composited on white) and
palette images are normalised; only the first frame of a multi-page TIFF is read. A file
whose tail is damaged but whose pixels mostly decode is kept, with a warning.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import cv2
import numpy as np

from billstream_core.errors import BillstreamError
from billstream_core.media import SUPPORTED_TYPES, sniff_content_type
from billstream_core.settings import LimitSettings


class ImageRejected(BillstreamError):
    """An image we will not recognise; ``code`` is the FAILED result's error code."""


@dataclass
class DecodedImage:
    gray: np.ndarray
    media_type: str
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


# --- header parsing -------------------------------------------------------------------

def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    raise ValueError("no JPEG frame header")


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("PNG without IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ValueError("unknown WebP chunk")


def _tiff_size(data: bytes) -> tuple[int, int]:
    endian = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(endian + "I", data[4:8])[0]
    count = struct.unpack(endian + "H", data[offset:offset + 2])[0]
    values: dict[int, int] = {}
    for n in range(count):
        entry = data[offset + 2 + 12 * n: offset + 14 + 12 * n]
        tag, kind = struct.unpack(endian + "HH", entry[:4])
        if tag in (256, 257):
            values[tag] = struct.unpack(endian + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return values[256], values[257]


_SIZE_READERS = {"image/jpeg": _jpeg_size, "image/png": _png_size, "image/webp": _webp_size, "image/tiff": _tiff_size}


def header_size(data: bytes, media_type: str) -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        return _SIZE_READERS[media_type](data)
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise ImageRejected(f"cannot read the {media_type} header: {exc}", code="CORRUPT_IMAGE") from exc


# --- decode ---------------------------------------------------------------------------

def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    finite = np.nan_to_num(pixels.astype(np.float32))
    low, high = float(finite.min()), float(finite.max())
    return ((finite - low) * (255.0 / max(high - low, 1e-6))).astype(np.uint8)


def _flatten(pixels: np.ndarray) -> np.ndarray:
    """Any channel layout → 8-bit grayscale; alpha composited on white paper."""
    pixels = _to_8bit(pixels)
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        pixels = (pixels[:, :, :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    if pixels.shape[2] == 1:
        return pixels[:, :, 0]
    return cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_BGR2GRAY)


def _blank_missing_tail(gray: np.ndarray) -> int:
    """libjpeg fills rows it never received with flat gray; make them paper. Returns count."""
    rows = 0
    while rows < gray.shape[0]:
        row = gray[gray.shape[0] - 1 - rows]
        if not (row.min() == row.max() and abs(int(row[0]) - 128) <= 1):
            break
        rows += 1
    if rows:
        gray[gray.shape[0] - rows:] = 255
    return rows


def decode_image(data: bytes, limits: LimitSettings) -> DecodedImage:
    if not data:
        raise ImageRejected("the object is empty (0 bytes)", code="EMPTY_OBJECT")
    if len(data) > limits.max_image_bytes:
        raise ImageRejected(f"{len(data)} bytes is over the {limits.max_image_bytes}-byte limit", code="IMAGE_TOO_LARGE")
    media_type = sniff_content_type(data)
    if media_type not in SUPPORTED_TYPES:
        raise ImageRejected(f"unsupported format ({media_type}); send JPEG, PNG, WebP, TIFF or PDF",
                            code="UNSUPPORTED_FORMAT")
    width, height = header_size(data, media_type)
    if width <= 0 or height <= 0:
        raise ImageRejected(f"the header says {width}x{height} pixels", code="CORRUPT_IMAGE")
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise ImageRejected(f"{width}x{height} pixels is over the limits ({limits.max_image_side} px a side, "
                            f"{limits.max_image_pixels} pixels)", code="IMAGE_TOO_LARGE")
    warnings: list[str] = []
    buffer = np.frombuffer(data, np.uint8)
    if media_type in ("image/jpeg", "image/tiff"):
        # IMREAD_COLOR applies EXIF orientation and converts CMYK/YCCK; ANYDEPTH keeps 16-bit
        pixels = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    else:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # keep alpha to composite it
    truncated = media_type == "image/jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if pixels is None and truncated:
        # a cut-off scan: close the stream so libjpeg decodes what arrived
        pixels = cv2.imdecode(np.frombuffer(data + b"\xff\xd9", np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if pixels is None or pixels.size == 0:
        raise ImageRejected(f"the {media_type} data cannot be decoded", code="CORRUPT_IMAGE")
    gray = _flatten(pixels)
    if truncated:
        missing = _blank_missing_tail(gray)
        warnings.append(f"truncated JPEG: the last {missing} of {gray.shape[0]} rows were missing")
    return DecodedImage(gray, media_type, gray.shape[1], gray.shape[0], warnings)
