"""The fields that patterns find well: the date and the total, with their normalised values.

A date is a token in one of the printed date shapes; its day/month order is decided once
for the whole receipt (a first number above 12 means day first, a second above 12 means
month first; Malaysian print, day first, otherwise). The total is the amount beside a
total keyword, on its line or on the same row, preferring the keywords that name the
amount paid (rounded, nett, grand) over a plain TOTAL, and never a subtotal or a tax.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_MONTH = r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*"
_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.-])")
_ISO = re.compile(r"(?<![\d/.-])(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(?![\d/.-])")
_NAMED = re.compile(rf"(?<![\dA-Z])(\d{{1,2}})([ -]?)({_MONTH})\2,?(\d{{4}}|\d{{2}})(?![\d])", re.IGNORECASE)

_AMOUNT = re.compile(r"(?<![\w.,])(?:(RM|MYR|\$)\s?)?(-?\d{1,3}(?:,\d{3})*\.\d{2}|-?\d+\.\d{2})(?![\d.])", re.IGNORECASE)
# keyword → priority (higher wins); names of the amount paid first
TOTAL_KEYWORDS = (
    (re.compile(r"\bROUND(?:ED|ING)?\s*(?:ADJ\w*\s*)?TOTAL|TOTAL\s*\(?ROUND", re.I), 5),
    (re.compile(r"\b(?:NETT?|GRAND)\s*TOTAL", re.I), 4),
    (re.compile(r"\bTOTAL\s*(?:AMOUNT|AMT|PAYABLE|DUE|SALES|INCL\w*)", re.I), 3),
    (re.compile(r"\bAMOUNT\s*(?:DUE|PAYABLE)", re.I), 3),
    (re.compile(r"\bTOTAL\b", re.I), 2),
)
NOT_TOTAL = re.compile(r"SUB\s*-?\s*TOTAL|TOTAL\s*(?:QTY|QUANTITY|ITEM|GST|TAX|DISC|EXCL|SAVING|NO\b|POINT)|"
                       r"\bGST\b|\bSST\b|\bTAX\b|EXCL", re.I)


@dataclass(frozen=True)
class Found:
    """A field found on one or more lines: the printed text, its normalised value and
    currency where it has one, how sure the finder is, and the lines it came from."""

    text: str
    value: str | None
    confidence: float
    lines: tuple[int, ...]
    currency: str | None = None


@dataclass(frozen=True)
class Row:
    """A recognised line as the field finders see it: text and vertical extent."""

    text: str
    top: float
    bottom: float
    left: float


def _year(text: str) -> int:
    year = int(text)
    return year + 2000 if len(text) == 2 else year


def _valid(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def date_candidates(rows: list[Row]) -> list[tuple[int, re.Match[str], str]]:
    """(line, match, kind) for every date-shaped token, kind numeric, iso or named."""
    found = []
    for index, row in enumerate(rows):
        for kind, pattern in (("iso", _ISO), ("numeric", _NUMERIC), ("named", _NAMED)):
            found += [(index, m, kind) for m in pattern.finditer(row.text)]
    return found


def find_date(rows: list[Row]) -> Found | None:
    candidates = date_candidates(rows)
    numeric = [(int(m.group(1)), int(m.group(3))) for _, m, kind in candidates if kind == "numeric"]
    day_first = not (any(b > 12 for _, b in numeric) and not any(a > 12 for a, _ in numeric))
    best: tuple[float, Found] | None = None
    for index, match, kind in candidates:
        if kind == "iso":
            value = _valid(int(match.group(1)), int(match.group(3)), int(match.group(4)))
        elif kind == "named":
            value = _valid(_year(match.group(4)), MONTHS[match.group(3)[:3].upper()], int(match.group(1)))
        else:
            a, b, year = int(match.group(1)), int(match.group(3)), _year(match.group(4))
            value = _valid(year, b, a) if day_first else _valid(year, a, b)
        plausible = value is not None and 2000 <= int(value[:4]) <= 2035
        score = (2.0 if plausible else 0.0) + (1.0 if re.search(r"DATE|TARIKH", rows[index].text, re.I) else 0.0) \
            - 0.01 * index
        confidence = 0.95 if plausible and score >= 2.9 else 0.8 if plausible else 0.2
        if best is None or score > best[0]:
            best = (score, Found(match.group(0), value, confidence, (index,)))
    return best[1] if best is not None else None


def _amounts(text: str) -> list[re.Match[str]]:
    return list(_AMOUNT.finditer(text))


def _same_row(a: Row, b: Row) -> bool:
    overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    return overlap > 0.5 * min(a.bottom - a.top, b.bottom - b.top)


def find_total(rows: list[Row]) -> Found | None:
    """The amount beside the strongest total keyword; the lowest such line when they tie."""
    best: tuple[tuple[int, int], Found] | None = None
    for index, row in enumerate(rows):
        priority = next((p for pattern, p in TOTAL_KEYWORDS if pattern.search(row.text)), 0)
        if not priority or NOT_TOTAL.search(row.text) and priority < 4:
            continue
        keyword_end = max(m.end() for pattern, _ in TOTAL_KEYWORDS for m in pattern.finditer(row.text))
        amount = next((m for m in _amounts(row.text) if m.start() >= keyword_end - 1), None)
        source: tuple[int, ...] = (index,)
        if amount is None:  # the amount printed in its own column, on the same row, to the right
            beside = [(j, m) for j, other in enumerate(rows) if j != index and other.left > row.left
                      and _same_row(row, other) for m in _amounts(other.text)[:1]]
            if not beside:
                continue
            j, amount = min(beside, key=lambda item: rows[item[0]].left)
            source = (index, j)
        value = amount.group(2).replace(",", "")
        found = Found(amount.group(0), value, 0.6 + 0.08 * priority, source,
                      currency=(amount.group(1) or "").upper().replace("MYR", "RM") or None)
        key = (priority, index)
        if best is None or key > best[0]:
            best = (key, found)
    return best[1] if best is not None else None
