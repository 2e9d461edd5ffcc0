"""Key fields from recognised lines: the date and total patterns, the line blocks, the evidence."""
from __future__ import annotations

import numpy as np
import pytest

from models.fields.extractor import REGISTRATION_TAIL, KeyFieldExtractor
from models.fields.rules import Row, find_date, find_total


def rows(*texts: str) -> list[Row]:
    return [Row(text, 30.0 * i, 30.0 * i + 20, 10.0) for i, text in enumerate(texts)]


def quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


@pytest.mark.parametrize(("lines", "printed", "iso"), [
    (["INVOICE 123", "DATE: 25/12/2018 10:01"], "25/12/2018", "2018-12-25"),
    (["DATE 03-04-18", "TIME 13:00"], "03-04-18", "2018-04-03"),  # day first, as printed in Malaysia
    (["12/25/2018"], "12/25/2018", "2018-12-25"),  # month first: the second number is over 12
    (["05 MAR 2018 14:22"], "05 MAR 2018", "2018-03-05"),
    (["2018-01-31 09:00"], "2018-01-31", "2018-01-31"),
    (["12-JAN-2017"], "12-JAN-2017", "2017-01-12"),
])
def test_a_date_keeps_its_print_and_gets_its_iso_value(lines: list[str], printed: str, iso: str) -> None:
    found = find_date(rows(*lines))
    assert found is not None and (found.text, found.value) == (printed, iso)


def test_the_day_month_order_is_decided_by_the_whole_receipt() -> None:
    found = find_date(rows("DATE: 04/05/2018", "PRINTED 13/05/2018"))  # 13 cannot be a month: day first
    assert found is not None and found.value == "2018-05-04"
    found = find_date(rows("DATE: 04/05/2018", "DUE 05/13/2018"))  # 13 cannot be a day: month first
    assert found is not None and found.value == "2018-04-05"


def test_the_total_prefers_the_amount_paid_and_skips_subtotals_and_tax() -> None:
    found = find_total(rows("SUBTOTAL 8.50", "GST 6% 0.51", "TOTAL 9.01", "ROUNDING -0.01", "ROUNDED TOTAL RM9.00",
                            "CASH 10.00"))
    assert found is not None and (found.text, found.value, found.currency) == ("RM9.00", "9.00", "RM")
    found = find_total(rows("TOTAL QTY 3", "TOTAL: 1,234.50"))
    assert found is not None and (found.value, found.currency) == ("1234.50", None)


def test_a_total_printed_in_its_own_column_is_found_on_the_same_row() -> None:
    lines = [Row("TOTAL:", 100, 120, 20), Row("THANK YOU", 140, 160, 20), Row("16.10", 101, 119, 300)]
    found = find_total(lines)
    assert found is not None and found.value == "16.10" and found.lines == (0, 2)


def test_the_rule_extractor_returns_each_field_with_its_lines_and_boxes() -> None:
    texts = ["KEDAI RUNCIT AH SENG SDN BHD", "(123456-W)", "NO. 5, JALAN MAJU 3,", "81100 JOHOR BAHRU, JOHOR.",
             "TEL: 07-1234567", "DATE: 02/03/2018 10:01", "TEH TARIK 2.00", "TOTAL:", "THANK YOU"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    lines.append(("16.10", quad(320, 30 * 7, 380, 30 * 7 + 20)))
    fields = KeyFieldExtractor(None).extract(lines, (400, 400))
    assert fields["company"].text == "KEDAI RUNCIT AH SENG SDN BHD" and fields["company"].lines == (0,)
    assert fields["address"].text == "NO. 5, JALAN MAJU 3, 81100 JOHOR BAHRU, JOHOR."
    assert fields["address"].lines == (2, 3) and len(fields["address"].boxes) == 2
    assert (fields["date"].value, fields["total"].value) == ("2018-03-02", "16.10")
    assert fields["total"].boxes[-1] == (320.0, 210.0, 380.0, 210.0, 380.0, 230.0, 320.0, 230.0)
    assert KeyFieldExtractor(None).extract([], (10, 10)) == {}


def test_a_block_grows_up_and_down_by_its_own_thresholds() -> None:
    texts = ["CITY MILK", "R&C VENTURE TRADING", "(CO. NO. 12345-X)", "NO. 5, JALAN MAJU 3,", "81100 JOHOR BAHRU",
             "TEL 07-1234567"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    probabilities = np.array([[0.6, 0.4, 0.0], [0.1, 0.9, 0.0], [0.6, 0.4, 0.0], [0.2, 0.0, 0.8], [0.6, 0.0, 0.4],
                              [1.0, 0.0, 0.0]], np.float32)
    both = KeyFieldExtractor(None, extend={"company": (0.3, 0.3), "address": (0.3, 0.3)})
    fields = both.extract(lines, (400, 400), probabilities=probabilities)
    assert fields["company"].lines == (0, 1, 2) and fields["company"].text == "CITY MILK R&C VENTURE TRADING"
    assert fields["address"].lines == (3, 4)
    down_only = KeyFieldExtractor(None, extend={"company": (0.5, 0.3), "address": (0.3, 0.5)})
    fields = down_only.extract(lines, (400, 400), probabilities=probabilities)
    assert fields["company"].lines == (1, 2) and fields["company"].text == "R&C VENTURE TRADING"
    assert fields["address"].lines == (3,)


def test_an_address_block_never_takes_in_a_document_title_or_contact_line() -> None:
    texts = ["R&C VENTURE SDN BHD", "12, JALAN TAMPOI 7/4,", "81200 JOHOR BAHRU,JOHOR", "TAX INVOICE",
             "TEL : 07-1234567", "NO. 9, JALAN MAJU"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    # the classifier leans towards the title and the telephone line as much as to the address's foot
    probabilities = np.array([[0.1, 0.9, 0.0], [0.1, 0.0, 0.9], [0.5, 0.0, 0.5], [0.5, 0.0, 0.5], [0.5, 0.0, 0.5],
                              [0.5, 0.0, 0.5]], np.float32)
    extractor = KeyFieldExtractor(None, extend={"company": (0.5, 0.5), "address": (0.3, 0.3)})
    fields = extractor.extract(lines, (400, 400), probabilities=probabilities)
    assert fields["address"].lines == (1, 2)
    assert fields["address"].text == "12, JALAN TAMPOI 7/4, 81200 JOHOR BAHRU,JOHOR"
    # a stop line that is itself the best line is still the field: it is only never joined on
    alone = np.array([[0.1, 0.9, 0.0], [0.9, 0.0, 0.1], [0.9, 0.0, 0.1], [0.3, 0.0, 0.7], [0.5, 0.0, 0.5],
                      [0.9, 0.0, 0.1]], np.float32)
    assert extractor.extract(lines, (400, 400), probabilities=alone)["address"].lines == (3,)


def test_a_sellers_name_printed_with_its_registration_number_ends_the_company_block() -> None:
    texts = ["ABC TRADING SDN BHD (728515-M)", "MYDIN MART SRI MUDA", "NO. 5, JALAN MAJU 3,"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    extractor = KeyFieldExtractor(None, extend={"company": (0.3, 0.3), "address": (0.3, 0.3)})
    below = np.array([[0.1, 0.9, 0.0], [0.4, 0.6, 0.0], [0.1, 0.0, 0.9]], np.float32)
    company = extractor.extract(lines, (400, 400), probabilities=below)["company"]
    assert (company.lines, company.text) == ((0,), "ABC TRADING SDN BHD")
    # nor is a registered name above the best line joined: its number would sit inside the name
    above = np.array([[0.4, 0.6, 0.0], [0.1, 0.9, 0.0], [0.1, 0.0, 0.9]], np.float32)
    assert extractor.extract(lines, (400, 400), probabilities=above)["company"].lines == (1,)
    # without a number (or a legal suffix) the two lines are one block
    plain = [("ABC TRADING", lines[0][1])] + lines[1:]
    assert extractor.extract(plain, (400, 400), probabilities=below)["company"].text == \
        "ABC TRADING MYDIN MART SRI MUDA"


def test_a_legal_suffix_ends_the_sellers_name_and_a_brand_above_a_whole_legal_name_is_left_out() -> None:
    texts = ["SUSHI MENTAI - MAHKOTA CHERAS", "MIZU MENTAI SDN. BHD.", "FIRST WORLD THEME PARK", "NO. 5, JALAN MAJU 3,"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    probabilities = np.array([[0.3, 0.7, 0.0], [0.1, 0.9, 0.0], [0.4, 0.6, 0.0], [0.1, 0.0, 0.9]], np.float32)
    extractor = KeyFieldExtractor(None, extend={"company": (0.5, 0.5), "address": (0.3, 0.3)})
    company = extractor.extract(lines, (400, 400), probabilities=probabilities)["company"]
    assert (company.lines, company.text) == ((1,), "MIZU MENTAI SDN. BHD.")
    # a suffix alone on its line continues the name above it: that name is not a brand
    split = [("POPULAR BOOK CO. (M)", lines[0][1]), ("SDN BHD", lines[1][1])] + lines[2:]
    company = extractor.extract(split, (400, 400), probabilities=probabilities)["company"]
    assert (company.lines, company.text) == ((0, 1), "POPULAR BOOK CO. (M) SDN BHD")
    # what is read after the suffix is not part of the name
    glued = [lines[0], ("MIZU MENTAI SDN. BHD.LLR", lines[1][1])] + lines[2:]
    assert extractor.extract(glued, (400, 400), probabilities=probabilities)["company"].text == "MIZU MENTAI SDN. BHD."


def test_a_title_the_detector_parted_into_words_is_joined_into_one_field() -> None:
    # "SAM SAM | TRADING | CO" on one row, the classifier sure only of the middle piece
    lines = [("SAM SAM", quad(130, 70, 345, 105)), ("TRADING", quad(368, 68, 588, 106)), ("CO", quad(602, 69, 677, 105)),
             ("(742016-W)", quad(327, 110, 476, 145)), ("67,JLN MEWAH 25/63,", quad(160, 148, 640, 187)),
             ("TEL 03-51213881", quad(230, 227, 550, 264))]
    probabilities = np.array([[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.9, 0.1, 0.0], [0.1, 0.0, 0.9],
                              [1.0, 0.0, 0.0]], np.float32)
    extractor = KeyFieldExtractor(None, extend={"company": (0.5, 0.5), "address": (0.3, 0.3)})
    fields = extractor.extract(lines, (800, 600), probabilities=probabilities)
    assert (fields["company"].lines, fields["company"].text) == ((0, 1, 2), "SAM SAM TRADING CO")
    # a piece far along the row is another column, not the same printed line
    apart = lines[:2] + [("CO", quad(1500, 69, 1560, 105))] + lines[3:]
    assert extractor.extract(apart, (1600, 600), probabilities=probabilities)["company"].lines == (0, 1)


def test_the_sellers_tax_number_ends_the_address_and_is_not_part_of_it() -> None:
    texts = ["R&C VENTURE SDN BHD", "LOT 1851-A, JALAN KPB 6,", "43300 SERI KEMBANGAN, SELANGOR (GST ID",
             "NO :000473792512)", "TEL 03-1234567"]
    lines = [(text, quad(20, 30 * i, 300, 30 * i + 20)) for i, text in enumerate(texts)]
    probabilities = np.array([[0.1, 0.9, 0.0], [0.1, 0.0, 0.9], [0.2, 0.0, 0.8], [0.4, 0.0, 0.6], [1.0, 0.0, 0.0]],
                             np.float32)
    extractor = KeyFieldExtractor(None, extend={"company": (0.5, 0.5), "address": (0.3, 0.3)})
    address = extractor.extract(lines, (400, 400), probabilities=probabilities)["address"]
    assert address.text == "LOT 1851-A, JALAN KPB 6, 43300 SERI KEMBANGAN, SELANGOR"
    assert address.lines == (1, 2) and len(address.boxes) == 2


class FirstAmount:
    """A stand-in total ranker that prefers the first amount printed."""

    def predict(self, features: np.ndarray) -> np.ndarray:
        return -np.arange(len(features), dtype=np.float32)


@pytest.mark.parametrize(("kept", "tight", "spaced"), [
    (False, "8.20", "8.20"),
    (True, "RM8.20", "RM 8.20"),
    ({"tight": True, "spaced": False}, "RM8.20", "8.20"),
    ({"spaced": True}, "8.20", "RM 8.20"),
])
def test_the_total_keeps_its_printed_currency_as_trained_for_each_form(kept: bool | dict[str, bool], tight: str,
                                                                       spaced: str) -> None:
    extractor = KeyFieldExtractor(None, totals=FirstAmount(), total_currency=kept)
    for printed, expected in (("TOTAL RM8.20", tight), ("TOTAL RM 8.20", spaced)):
        total = extractor.extract([(printed, quad(20, 30, 300, 50))], (400, 400))["total"]
        assert (total.text, total.value, total.currency) == (expected, "8.20", "RM")


def test_an_unknown_currency_form_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown currency forms"):
        KeyFieldExtractor(None, total_currency={"tight": True, "wide": True})


@pytest.mark.parametrize(("printed", "name"), [
    ("GARDENIA BAKERIES (KL) SDN BHD (139386 X)", "GARDENIA BAKERIES (KL) SDN BHD"),
    ("ECOSWAY.COM SDN BHD (509213A)", "ECOSWAY.COM SDN BHD"),
    ("MR. D.I.Y. (M) SDN BHD CO-REG:", "MR. D.I.Y. (M) SDN BHD"),
    ("ABC TRADING SDN BHD (CO. NO. 12345-X)", "ABC TRADING SDN BHD"),
    ("ABC TRADING SDN BHD 12345-X", "ABC TRADING SDN BHD"),
    ("RESTORAN NASI KANDAR 99", "RESTORAN NASI KANDAR 99"),  # a number in the name stays
    ("SYARIKAT ABC 1988", "SYARIKAT ABC 1988"),
    ("AEON CO. (M) BHD", "AEON CO. (M) BHD"),
])
def test_a_registration_number_after_the_sellers_name_is_not_part_of_it(printed: str, name: str) -> None:
    assert REGISTRATION_TAIL.sub("", printed) == name


def test_the_shipped_extractor_reads_the_fields_of_a_rendered_bill() -> None:
    import cv2

    from models.engine.predictor import EngineOptions, OcrEngine
    from models.manifest import read_manifest
    from producers.samples import sample_bill_lines, sample_bills

    assert "fields" in read_manifest(), "the key-field models ship with the weights"
    engine = OcrEngine.load(options=EngineOptions(backend="onnx-int8"))
    assert engine.fields.model is not None and engine.fields.totals is not None
    page = cv2.imdecode(np.frombuffer(sample_bills(2)[1], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert page is not None
    fields = engine.read_pages([page])[0].fields
    printed = sample_bill_lines(1)
    assert fields["company"].text == printed[0]
    assert fields["address"].text == f"{printed[1]} {printed[2]}"
    assert fields["date"].value == "2018-03-02"
    assert fields["total"].text == printed[-2].split()[-1] and 0 < fields["total"].confidence <= 1
