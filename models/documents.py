"""A bill as pages: an image is one page; a PDF is rendered page by page with PDFium.

Everything a PDF can do to hurt is refused before any page is rendered, each with its
result code: a password (ENCRYPTED_DOCUMENT), no pages (EMPTY_DOCUMENT), more pages than
the limit (TOO_MANY_PAGES), a page whose rendering would be over the pixel limits
(IMAGE_TOO_LARGE: a "PDF bomb" declares a huge page in a few bytes), and a file PDFium
cannot parse, truncated or corrupt (CORRUPT_IMAGE). Pages render at ``pdf_dpi``.

PDFium is not thread-safe (concurrent documents crash the process), and the worker decodes
its batch's bills on a thread pool: every use of it here holds one process-wide lock.

A born-digital page's own text comes along (see :mod:`models.pdf_text`) when
``pdf_text_layer`` is on: the engine then takes its lines instead of reading the picture.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from billstream_core.media import sniff_content_type
from billstream_core.settings import LimitSettings
from models.intake import DecodedImage, ImageRejected, decode_image
from models.pdf_text import PageText, page_text

PDF = "application/pdf"
_PDFIUM = threading.Lock()


@dataclass
class DecodedDocument:
    pages: list[DecodedImage]
    media_type: str
    warnings: list[str] = field(default_factory=list)
    text_layers: list[PageText | None] = field(default_factory=list)  # per page; None: read it by OCR

    def text_layer(self, page: int) -> PageText | None:
        return self.text_layers[page] if page < len(self.text_layers) else None


def decode_document(data: bytes, limits: LimitSettings) -> DecodedDocument:
    if data and len(data) <= limits.max_image_bytes and sniff_content_type(data) == PDF:
        return _render_pdf(data, limits)
    image = decode_image(data, limits)
    return DecodedDocument([image], image.media_type, list(image.warnings))


def _declares_no_pages(data: bytes) -> bool:
    counts = re.findall(rb"/Count\s+(\d+)", data)
    return bool(counts) and all(int(count) == 0 for count in counts)


def _render_pdf(data: bytes, limits: LimitSettings) -> DecodedDocument:
    with _PDFIUM:
        return _render_pdf_locked(data, limits)


def _render_pdf_locked(data: bytes, limits: LimitSettings) -> DecodedDocument:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        # PDFium's error is its last one, process-wide: read it only with the file's own evidence
        if _declares_no_pages(data):  # PDFium refuses to open a document with an empty page tree
            raise ImageRejected("the PDF has no pages", code="EMPTY_DOCUMENT") from exc
        if b"/Encrypt" in data and "password" in str(exc).lower():
            raise ImageRejected("the PDF is encrypted (password-protected)", code="ENCRYPTED_DOCUMENT") from exc
        raise ImageRejected(f"the PDF cannot be read (truncated or corrupt): {exc}", code="CORRUPT_IMAGE") from exc
    try:
        count = len(document)
        if count == 0:
            raise ImageRejected("the PDF has no pages", code="EMPTY_DOCUMENT")
        if count > limits.max_pages:
            raise ImageRejected(f"the PDF has {count} pages, over the {limits.max_pages}-page limit",
                                code="TOO_MANY_PAGES")
        scale = limits.pdf_dpi / 72.0
        sizes = []
        for number in range(count):
            width, height = document.get_page_size(number)
            pixels = (round(width * scale), round(height * scale))
            if min(pixels) <= 0:
                raise ImageRejected(f"page {number + 1} of the PDF has no area", code="CORRUPT_IMAGE")
            if max(pixels) > limits.max_image_side or pixels[0] * pixels[1] > limits.max_image_pixels:
                raise ImageRejected(f"page {number + 1} would render at {pixels[0]}x{pixels[1]} pixels "
                                    f"({limits.pdf_dpi} dpi), over the limits ({limits.max_image_side} px a side, "
                                    f"{limits.max_image_pixels} pixels)", code="IMAGE_TOO_LARGE")
            sizes.append(pixels)
        pages, text_layers = [], []
        for number in range(count):
            try:
                page = document[number]
            except pdfium.PdfiumError as exc:
                raise ImageRejected(f"page {number + 1} of the PDF cannot be read: {exc}", code="CORRUPT_IMAGE") from exc
            try:
                layer = _text_layer(page, scale) if limits.pdf_text_layer else None
                gray = page.render(scale=scale, rotation=layer.turned if layer else 0, grayscale=True).to_numpy()
                text_layers.append(layer)
            except pdfium.PdfiumError as exc:
                raise ImageRejected(f"page {number + 1} of the PDF cannot be rendered: {exc}",
                                    code="CORRUPT_IMAGE") from exc
            finally:
                page.close()
            gray = gray[:, :, 0] if gray.ndim == 3 else gray
            pages.append(DecodedImage(gray.copy(), PDF, gray.shape[1], gray.shape[0]))
        return DecodedDocument(pages, PDF, text_layers=text_layers)
    finally:
        document.close()


def _text_layer(page: object, scale: float) -> PageText | None:
    """The page's own text, or None where PDFium cannot read it: the picture is read instead."""
    import pypdfium2 as pdfium

    try:
        return page_text(page, scale)
    except pdfium.PdfiumError:
        return None
