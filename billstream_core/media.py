"""Image format by magic bytes, never by file name or declared type."""
from __future__ import annotations

from pathlib import Path

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
)

SUPPORTED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/tiff"})

# for picking files out of a directory only; what a file *is* comes from sniff_content_type
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".pdf"})


def sniff_content_type(data: bytes) -> str:
    """The media type the bytes really are; ``application/octet-stream`` when unknown."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, offset, media_type in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return media_type
    return "application/octet-stream"


def list_images(directory: Path, *, recursive: bool = False) -> list[Path]:
    """The image files of a directory, by suffix, sorted; with ``recursive``, of its tree too."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
