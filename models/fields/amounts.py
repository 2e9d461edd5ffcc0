"""Candidates for the total: every amount printed on the receipt, with what surrounds it.

Which amount is the total is learned (a ranker over these features), since receipts say
it in many ways: TOTAL INCL. GST, TOTAL AFTER ADJ, AMOUNT TO BE PAID, or only by being the
amount that the cash paid minus the change gives. Each candidate knows the text of its row
(its line and the lines level with it, to its left), of the rows above and below, and how
its value relates to the other amounts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from models.fields.rules import Row

AMOUNT = re.compile(r"(?<![\w.,])(?:(RM|MYR|\$)\s?)?(-?\d{1,3}(?:,\d{3})+\.\d{2}|-?\d+\.\d{2})(?![\d.])", re.I)
WORDS = ("TOTAL", "ROUND", "NETT|NET\\b|GRAND", "INCL", "GST|SST", "TAX", "SUB", "CASH|TENDER|PAID|PAYMENT",
         "CHANGE|BALANCE", "DISC", "QTY|QUANTITY|ITEMS?\\b", "AMOUNT|AMT", "DUE|PAYABLE|TO BE PAID", "SALES",
         "EXCL", "SAVING|POINT", "ADJ", "RM|MYR|\\$", "PRICE|U/P|UNIT", "VISA|MASTER|CARD|DEBIT|CREDIT")
_WORDS = [re.compile(w, re.I) for w in WORDS]
NAMES = tuple(f"{where}_{w.split('|')[0].strip(chr(92)).lower()}" for where in ("row", "above", "below") for w in WORDS) + (
    "position", "top", "left", "value_log", "value_share_of_max", "rank", "is_max", "repeats", "cash_minus_change",
    "has_currency", "negative", "own_line_only_amount", "candidates")


@dataclass(frozen=True)
class Candidate:
    line: int
    text: str  # as printed, currency included where printed with it
    value: str  # decimal string
    currency: str | None
    row_lines: tuple[int, ...]  # its line and the keyword lines level with it, to its left


def _level(a: Row, b: Row) -> bool:
    overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    return overlap > 0.5 * min(a.bottom - a.top, b.bottom - b.top)


def _flags(text: str) -> list[float]:
    return [float(bool(w.search(text))) for w in _WORDS]


def candidates(rows: list[Row]) -> list[Candidate]:
    out = []
    for index, row in enumerate(rows):
        level = tuple(j for j, other in enumerate(rows) if j != index and other.left < row.left and _level(row, other))
        for match in AMOUNT.finditer(row.text):
            currency = (match.group(1) or "").upper().replace("MYR", "RM") or None
            out.append(Candidate(index, match.group(0), match.group(2).replace(",", ""), currency, level + (index,)))
    return out


def _row_text(rows: list[Row], lines: tuple[int, ...]) -> str:
    return " ".join(rows[i].text for i in lines)


def candidate_features(rows: list[Row], found: list[Candidate], page_size: tuple[float, float]) -> np.ndarray:
    if not found:
        return np.zeros((0, len(NAMES)), np.float32)
    values = np.array([float(c.value) for c in found])
    top = max(values.max(), 1e-6)
    order = (-values).argsort().argsort()
    cash = [float(c.value) for c in found if re.search(r"CASH|TENDER|PAID", _row_text(rows, c.row_lines), re.I)]
    change = [float(c.value) for c in found if re.search(r"CHANGE|BALANCE", _row_text(rows, c.row_lines), re.I)]
    paid = {round(a - b, 2) for a in cash for b in change}
    out = []
    for k, c in enumerate(found):
        row = rows[c.line]
        above = " ".join(r.text for r in rows if r.bottom <= row.top and r.bottom > row.top - 1.5 * (row.bottom - row.top))
        below = " ".join(r.text for r in rows if r.top >= row.bottom and r.top < row.bottom + 1.5 * (row.bottom - row.top))
        value = float(c.value)
        own = AMOUNT.sub("", row.text).strip(" :RM$") == ""
        out.append(_flags(_row_text(rows, c.row_lines)) + _flags(above) + _flags(below) + [
            c.line / max(len(rows), 1), row.top / page_size[1], row.left / page_size[0], float(np.log1p(abs(value))),
            value / top, float(order[k]), float(value == values.max()), float((values == value).sum()),
            float(round(value, 2) in paid), float(c.currency is not None), float(value < 0), float(own), len(found)])
    return np.array(out, np.float32)
