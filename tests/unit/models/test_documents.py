"""PDF bills: pages rendered within the limits, and every kind of bad PDF refused with its code."""
from __future__ import annotations

import numpy as np
import pytest

from billstream_core.settings import LimitSettings
from models.documents import decode_document
from models.intake import ImageRejected
from producers.samples import sample_bill_lines, sample_bills
from tests.support.pdfs import empty_pdf, encrypted_pdf, huge_page_pdf, joined_pdf, pages_pdf, text_pdf


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    from models.engine.predictor import EngineOptions, OcrEngine

    return OcrEngine.load(options=EngineOptions(backend="onnx-int8"))


def test_a_multi_page_pdf_is_read_page_by_page_with_its_fields(engine) -> None:  # type: ignore[no-untyped-def]
    from models.bill import merge_pages

    bill = merge_pages(engine.read_document_bytes(pages_pdf(sample_bills(2)), LimitSettings()))
    assert {line["page"] for line in bill.lines} == {0, 1} and bill.text_source == "ocr"
    first, second = sample_bill_lines(0), sample_bill_lines(1)
    assert first[0] in bill.text and second[0] in bill.text
    fields = {item["name"]: item for item in bill.key_fields}
    assert fields["total"]["text"] in {first[-2].split()[-1], second[-2].split()[-1]}
    assert all(0 <= i < len(bill.lines) for item in bill.key_fields for i in item["lines"])


def _inked(gray: np.ndarray, quad: np.ndarray) -> bool:
    """Whether the rendered page has print under the box."""
    (left, top), (right, bottom) = quad.min(axis=0).astype(int), quad.max(axis=0).astype(int)
    return right > left and bottom > top and int(gray[top:bottom, left:right].min()) < 128


TEXT_BILL = ["BOOK SHOP SDN BHD", "NO. 3, JALAN MAWAR", "TOTAL:\t12.50"]


def test_a_born_digital_pdf_is_taken_as_its_own_text(engine) -> None:  # type: ignore[no-untyped-def]
    """The lines are the PDF's text as printed (columns apart, boxes on the rendered print), not OCR."""
    document = decode_document(text_pdf(TEXT_BILL), LimitSettings())
    layer = document.text_layer(0)
    assert layer is not None and layer.turned == 0
    assert [line.text for line in layer.lines] == ["BOOK SHOP SDN BHD", "NO. 3, JALAN MAWAR", "TOTAL:", "12.50"]
    assert all(_inked(document.pages[0].gray, line.quad) for line in layer.lines)
    assert layer.lines[2].quad[0, 1] == pytest.approx(layer.lines[3].quad[0, 1], abs=3)  # one row, two columns

    from models.bill import merge_pages

    bill = merge_pages(engine.read_document_bytes(text_pdf(TEXT_BILL), LimitSettings()))
    assert bill.text_source == "pdf-text" and bill.text == "BOOK SHOP SDN BHD NO. 3, JALAN MAWAR TOTAL: 12.50"
    assert {line["confidence"] for line in bill.lines} == {1.0}
    fields = {item["name"]: item for item in bill.key_fields}
    assert fields["total"]["value"] == "12.50" and fields["company"]["text"] == "BOOK SHOP SDN BHD"


@pytest.mark.parametrize(("rotate", "turned"), [(90, 270), (180, 180), (270, 90)])
def test_a_rotated_text_page_is_rendered_upright(engine, rotate: int, turned: int) -> None:  # type: ignore[no-untyped-def]
    data = text_pdf(TEXT_BILL, rotate=rotate)
    document = decode_document(data, LimitSettings())
    layer = document.text_layer(0)
    assert layer is not None and layer.turned == turned
    gray = document.pages[0].gray
    assert gray.shape[0] > gray.shape[1]  # the 300x400-point page stands upright again
    assert all(_inked(gray, line.quad) for line in layer.lines)
    assert all(line.quad[2, 0] - line.quad[0, 0] > line.quad[2, 1] - line.quad[0, 1] for line in layer.lines)
    page = engine.read_document_bytes(data, LimitSettings())[0]
    assert page.rotation == turned and page.source == "pdf-text"


@pytest.mark.parametrize("make", [
    lambda: text_pdf(TEXT_BILL, invisible=True),  # a scanner's hidden OCR layer
    lambda: text_pdf(TEXT_BILL, picture=0.7),  # the picture is the bill, the text a caption
    lambda: text_pdf(TEXT_BILL, picture=0.7, rotate=90),
    lambda: text_pdf(["\x01\x02\x03\x04 \x05\x06"]),  # a font with no Unicode map
    lambda: text_pdf(["A"]),  # too little to be a bill's text
    lambda: pages_pdf(sample_bills(1)),  # a picture, no text
])
def test_a_text_layer_that_is_not_sane_or_visible_is_left_to_ocr(make) -> None:  # type: ignore[no-untyped-def]
    assert decode_document(make(), LimitSettings()).text_layers == [None]


def test_a_small_picture_beside_the_text_leaves_the_text_layer_in_use() -> None:
    layer = decode_document(text_pdf(TEXT_BILL, picture=0.3), LimitSettings()).text_layer(0)
    assert layer is not None and [line.text for line in layer.lines][0] == "BOOK SHOP SDN BHD"


def test_a_page_with_more_text_than_a_bill_is_read_as_a_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.pdf_text

    assert decode_document(text_pdf(TEXT_BILL), LimitSettings()).text_layers != [None]
    monkeypatch.setattr(models.pdf_text, "MAX_CHARACTERS", 20)  # the bill has 45
    assert decode_document(text_pdf(TEXT_BILL), LimitSettings()).text_layers == [None]


def test_the_text_layer_can_be_turned_off_and_a_mixed_bill_says_so(engine) -> None:  # type: ignore[no-untyped-def]
    from models.bill import merge_pages

    off = merge_pages(engine.read_document_bytes(text_pdf(TEXT_BILL), LimitSettings(pdf_text_layer=False)))
    assert off.text_source == "ocr" and "12.50" in off.text
    mixed = merge_pages(engine.read_document_bytes(joined_pdf([text_pdf(TEXT_BILL), pages_pdf(sample_bills(1))]),
                                                   LimitSettings()))
    assert mixed.text_source == "mixed" and {line["page"] for line in mixed.lines} == {0, 1}
    assert sample_bill_lines(0)[0] in mixed.text


@pytest.mark.parametrize(("make", "code"), [
    (encrypted_pdf, "ENCRYPTED_DOCUMENT"),
    (empty_pdf, "EMPTY_DOCUMENT"),
    (huge_page_pdf, "IMAGE_TOO_LARGE"),
    (lambda: pages_pdf(sample_bills(1))[:400], "CORRUPT_IMAGE"),
])
def test_a_bad_pdf_is_refused_with_its_code(make, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageRejected) as refused:
        decode_document(make(), LimitSettings())
    assert refused.value.code == code


def test_more_pages_than_the_limit_are_refused_before_rendering() -> None:
    data = pages_pdf(sample_bills(3))
    with pytest.raises(ImageRejected) as refused:
        decode_document(data, LimitSettings(max_pages=2))
    assert refused.value.code == "TOO_MANY_PAGES" and "3 pages" in str(refused.value)
    assert len(decode_document(data, LimitSettings(max_pages=3)).pages) == 3


def test_an_image_is_a_one_page_document() -> None:
    document = decode_document(sample_bills(1)[0], LimitSettings())
    assert len(document.pages) == 1 and document.media_type == "image/png"


CONCURRENT_DECODING = """
from concurrent.futures import ThreadPoolExecutor
from billstream_core.settings import LimitSettings
from models.documents import decode_document
from producers.samples import sample_bills
from tests.support.pdfs import joined_pdf, pages_pdf, text_pdf
bills = [text_pdf(["SHOP", "TOTAL 1.00"]), pages_pdf(sample_bills(2)),
         joined_pdf([text_pdf(["A B C"]), pages_pdf(sample_bills(1))])]
with ThreadPoolExecutor(8) as pool:
    for _ in range(60):
        assert all(len(d.pages) for d in pool.map(lambda b: decode_document(b, LimitSettings()), bills * 4))
"""


def test_pdfs_decoded_on_many_threads_at_once_do_not_crash_the_process() -> None:
    """The worker decodes a batch's bills on a thread pool; PDFium is not thread-safe. Run in a
    child process, so that a crash is this test's failure and not the whole run's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", CONCURRENT_DECODING], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, f"concurrent PDF decoding failed (exit {done.returncode}): {done.stderr[-1500:]}"


def test_a_text_layer_pdfium_cannot_read_leaves_the_page_to_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2 as pdfium

    import models.documents

    def unreadable(page: object, scale: float) -> None:
        raise pdfium.PdfiumError("text page failed")

    monkeypatch.setattr(models.documents, "page_text", unreadable)
    document = decode_document(text_pdf(TEXT_BILL), LimitSettings())
    assert document.text_layers == [None] and document.pages[0].gray.min() < 128  # rendered all the same


def test_a_page_pdfium_cannot_render_is_a_corrupt_document(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2 as pdfium

    def broken(self: object, **kwargs: object) -> None:
        raise pdfium.PdfiumError("render failed")

    monkeypatch.setattr(pdfium.PdfPage, "render", broken)
    with pytest.raises(ImageRejected) as refused:
        decode_document(text_pdf(TEXT_BILL), LimitSettings())
    assert refused.value.code == "CORRUPT_IMAGE" and "page 1" in str(refused.value)
