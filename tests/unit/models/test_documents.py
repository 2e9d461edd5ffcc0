"""PDF bills: pages rendered within the limits, and every kind of bad PDF refused with its code."""
from __future__ import annotations

import pytest

from billstream_core.settings import LimitSettings
from models.documents import decode_document
from models.intake import ImageRejected
from producers.samples import sample_bill_lines, sample_bills
from tests.support.pdfs import empty_pdf, encrypted_pdf, huge_page_pdf, pages_pdf, text_pdf


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    from models.engine.predictor import EngineOptions, OcrEngine

    return OcrEngine.load(options=EngineOptions(backend="onnx-int8"))


def test_a_multi_page_pdf_is_read_page_by_page_with_its_fields(engine) -> None:  # type: ignore[no-untyped-def]
    from models.bill import merge_pages

    bill = merge_pages(engine.read_document_bytes(pages_pdf(sample_bills(2)), LimitSettings()))
    assert {line["page"] for line in bill.lines} == {0, 1}
    first, second = sample_bill_lines(0), sample_bill_lines(1)
    assert first[0] in bill.text and second[0] in bill.text
    fields = {item["name"]: item for item in bill.key_fields}
    assert fields["total"]["text"] in {first[-2].split()[-1], second[-2].split()[-1]}
    assert all(0 <= i < len(bill.lines) for item in bill.key_fields for i in item["lines"])


def test_a_pdf_with_a_text_layer_is_rendered_and_read(engine) -> None:  # type: ignore[no-untyped-def]
    pages = engine.read_document_bytes(text_pdf(["BOOK SHOP SDN BHD", "TOTAL: 12.50"]), LimitSettings())
    assert len(pages) == 1 and "12.50" in pages[0].text and pages[0].fields["total"].value == "12.50"


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
