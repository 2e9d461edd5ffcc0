import struct
import zlib

import cv2
import numpy as np
import pytest

from billstream_core.settings import LimitSettings
from models import intake
from models.intake import ImageRejected, decode_image

LIMITS = LimitSettings()


def encode(image: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, data = cv2.imencode(ext, image, params or [])
    assert ok
    return data.tobytes()


def page() -> np.ndarray:
    image = np.full((60, 120, 3), 255, np.uint8)
    cv2.putText(image, "RM 12", (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    return image


def png_with_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tiff"])
def test_supported_formats_decode_to_grayscale(ext: str) -> None:
    decoded = decode_image(encode(page(), ext), LIMITS)
    assert decoded.gray.shape == (60, 120) and decoded.gray.dtype == np.uint8
    assert decoded.gray.min() < 80 and decoded.gray.max() > 200
    assert decoded.warnings == []


@pytest.mark.parametrize(("data", "code"), [
    (b"", "EMPTY_OBJECT"),
    (b"GIF89a" + b"\x00" * 50, "UNSUPPORTED_FORMAT"),
    (b"%PDF-1.4 not an image", "UNSUPPORTED_FORMAT"),
    (b"plain text pretending to be a receipt.jpg", "UNSUPPORTED_FORMAT"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "CORRUPT_IMAGE"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "CORRUPT_IMAGE"),
])
def test_bad_inputs_are_rejected_with_their_code(data: bytes, code: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, LIMITS)
    assert caught.value.code == code


def test_valid_header_with_garbage_body_is_corrupt() -> None:
    data = encode(page(), ".png")
    broken = data[:40] + bytes(len(data) - 40)
    with pytest.raises(ImageRejected) as caught:
        decode_image(broken, LIMITS)
    assert caught.value.code == "CORRUPT_IMAGE"


def test_decompression_bomb_is_refused_from_the_header_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(*_: object) -> None:
        raise AssertionError("the full decode must not run")

    monkeypatch.setattr(intake.cv2, "imdecode", must_not_decode)
    bomb = png_with_header(60_000, 60_000)  # 3.6 gigapixels declared in a ~100-byte file
    assert len(bomb) < 200
    with pytest.raises(ImageRejected) as caught:
        decode_image(bomb, LIMITS)
    assert caught.value.code == "IMAGE_TOO_LARGE" and "60000x60000" in str(caught.value)


@pytest.mark.parametrize("limits", [
    LimitSettings(max_image_bytes=1024),        # the file is ~2 kB of noise
    LimitSettings(max_image_pixels=10_000),      # 120 x 60 = 7,200 px is fine, 150 x 200 is not
    LimitSettings(max_image_side=100),           # 150 px wide
])
def test_byte_pixel_and_side_limits(limits: LimitSettings) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 150), dtype=np.uint8)
    with pytest.raises(ImageRejected) as caught:
        decode_image(encode(noise, ".png"), limits)
    assert caught.value.code == "IMAGE_TOO_LARGE"
    assert decode_image(encode(page(), ".jpg"), LimitSettings(max_image_pixels=10_000)).width == 120


def test_exif_orientation_is_applied() -> None:
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = 255
    data = encode(image, ".jpg")
    exif = (b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01"
            b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")  # orientation 6: rotate 90 CW
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    decoded = decode_image(data[:2] + app1 + data[2:], LIMITS)
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.gray[:15].mean() > 200 and decoded.gray[25:].mean() < 50  # white half now on top


def test_alpha_is_composited_on_white_and_16_bit_is_scaled() -> None:
    rgba = np.zeros((30, 30, 4), np.uint8)  # fully transparent black
    rgba[10:20, 10:20] = (0, 0, 0, 255)      # opaque black square
    gray = decode_image(encode(rgba, ".png"), LIMITS).gray
    assert gray[0, 0] == 255 and gray[15, 15] == 0
    deep = np.full((30, 30), 65535, np.uint16)
    deep[10:20, 10:20] = 0
    gray16 = decode_image(encode(deep, ".png"), LIMITS).gray
    assert gray16[0, 0] == 255 and gray16[15, 15] == 0
    tiff16 = decode_image(encode(cv2.merge([deep, deep, deep]), ".tiff"), LIMITS).gray
    assert tiff16[0, 0] == 255 and tiff16[15, 15] == 0


def test_palette_png_decodes() -> None:
    from zlib import compress, crc32

    width, height = 4, 2
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # colour type 3 = palette
    plte = bytes([255, 255, 255, 0, 0, 0])
    rows = b"\x00" + bytes([0, 1, 0, 1]) + b"\x00" + bytes([1, 0, 1, 0])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"PLTE", plte) + chunk(b"IDAT", compress(rows)) + chunk(b"IEND", b"")
    gray = decode_image(data, LIMITS).gray
    assert gray.tolist() == [[255, 0, 255, 0], [0, 255, 0, 255]]


def test_cmyk_jpeg_decodes() -> None:
    import io

    from PIL import Image

    cmyk = Image.new("CMYK", (40, 20), (0, 0, 0, 0))       # white paper
    cmyk.paste((0, 0, 0, 255), (10, 5, 30, 15))            # black ink
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG", quality=95)
    gray = decode_image(buffer.getvalue(), LIMITS).gray
    assert gray.shape == (20, 40)
    assert gray[0, 0] > 230 and gray[10, 20] < 40


def test_truncated_jpeg_is_recognised_with_a_warning() -> None:
    rng = np.random.default_rng(1)
    image = np.full((400, 300), 255, np.uint8)
    for row in range(10, 390, 20):
        image[row:row + 8, 20:280] = rng.integers(0, 80, (8, 260))
    data = encode(image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    decoded = decode_image(data[: len(data) * 2 // 3], LIMITS)
    assert decoded.gray.shape == (400, 300)
    assert decoded.warnings and "truncated" in decoded.warnings[0]
    assert decoded.gray[:100].min() < 80  # the part that arrived is there
    assert decoded.gray[-1].min() == 255  # the missing rows are paper, not gray ink


def test_multi_page_tiff_reads_the_first_frame() -> None:
    first = np.full((40, 40), 0, np.uint8)
    second = np.full((40, 40), 255, np.uint8)
    ok, data = cv2.imencodemulti(".tiff", [first, second])
    assert ok
    assert decode_image(data.tobytes(), LIMITS).gray.max() == 0
