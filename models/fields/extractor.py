"""Key fields from recognised lines: company, date, address and total (SROIE task 3).

Patterns find the date and the total (:mod:`models.fields.rules`). Which lines name the
seller and where its address ends is learned: a gradient-boosted line classifier over
layout, character and keyword features (:mod:`models.fields.features`), trained here on the
receipts' key-field files and shipped as LightGBM's text model (no pickle). Without the
model, a rule stands in: the first seller-looking line, and the address lines under it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.fields.amounts import candidate_features, candidates
from models.fields.features import ADDRESS, CONTACT, DOCUMENT, POSTCODE, REGISTRATION, SELLER, STATE, line_features
from models.fields.rules import Found, Row, find_date, find_total

FIELDS = ("company", "date", "address", "total")
CLASSES = ("other", "company", "address")


@dataclass(frozen=True)
class KeyField:
    """One field as printed, its normalised value, and its evidence (line indices, boxes)."""

    name: str
    text: str
    value: str | None
    currency: str | None
    confidence: float
    lines: tuple[int, ...]
    boxes: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "value": self.value, "currency": self.currency,
                "confidence": round(self.confidence, 4), "lines": list(self.lines), "boxes": [list(b) for b in self.boxes]}


def rows_of(lines: list[tuple[str, np.ndarray]]) -> tuple[list[Row], list[float]]:
    rows, rights = [], []
    for text, quad in lines:
        q = np.asarray(quad, np.float32).reshape(4, 2)
        rows.append(Row(text, float(q[:, 1].min()), float(q[:, 1].max()), float(q[:, 0].min())))
        rights.append(float(q[:, 0].max()))
    return rows, rights


# per block field: (up, down), the probability a neighbouring line above or below needs to
# join the block; a seller's name is rarely continued upwards (a brand over the legal name)
Extension = Mapping[str, tuple[float, float]]


# whether a total printed with its currency keeps it: one answer, or one per form
CurrencyKept = bool | Mapping[str, bool]
CURRENCY_FORMS = ("tight", "spaced")


def currency_form(text: str) -> str:
    """"spaced" where a space parts the currency from the amount (RM 8.20), else "tight"."""
    digits = next((i for i, c in enumerate(text) if c.isdigit() or c == "-"), len(text))
    return "spaced" if text[:digits].endswith(" ") else "tight"


def currency_forms(kept: CurrencyKept) -> dict[str, bool]:
    if isinstance(kept, bool):
        return dict.fromkeys(CURRENCY_FORMS, kept)
    unknown = set(kept) - set(CURRENCY_FORMS)
    if unknown:
        raise ValueError(f"unknown currency forms {sorted(unknown)}; expected {list(CURRENCY_FORMS)}")
    return {form: bool(kept.get(form, False)) for form in CURRENCY_FORMS}


def uniform_extension(threshold: float) -> dict[str, tuple[float, float]]:
    return {"company": (threshold, threshold), "address": (threshold, threshold)}


class KeyFieldExtractor:
    def __init__(self, model: Any | None = None, threshold: float = 0.5, totals: Any | None = None,
                 total_currency: CurrencyKept = False, extend: Extension | None = None) -> None:
        """``model``: a LightGBM booster over :data:`CLASSES`; ``totals``: one scoring each
        printed amount as the total; None: the rules stand in. ``total_currency``: whether the
        total's text keeps the currency printed with it, for both forms or per form ("tight"
        as in RM8.20, "spaced" as in RM 8.20). ``extend``: per field, where not ``threshold``
        both ways."""
        self.model = model
        self.extend = dict(uniform_extension(threshold)) | dict(extend or {})
        self.totals = totals
        self.total_currency = currency_forms(total_currency)

    @classmethod
    def from_text(cls, lines_model: str, totals_model: str | None = None, threshold: float = 0.5,
                  total_currency: CurrencyKept = False, extend: Extension | None = None) -> KeyFieldExtractor:
        import lightgbm

        totals = lightgbm.Booster(model_str=totals_model) if totals_model else None
        return cls(lightgbm.Booster(model_str=lines_model), threshold, totals, total_currency, extend)

    def line_probabilities(self, rows: list[Row], rights: list[float], page_size: tuple[float, float]) -> np.ndarray:
        """(lines, classes): the classifier's, or the rule's 0/1 where there is no model."""
        if not rows:
            return np.zeros((0, len(CLASSES)), np.float32)
        if self.model is not None:
            return np.asarray(self.model.predict(line_features(rows, rights, page_size)), np.float32)
        return _rule_probabilities(rows)

    def extract(self, lines: list[tuple[str, np.ndarray]], page_size: tuple[float, float], *,
                probabilities: np.ndarray | None = None) -> dict[str, KeyField]:
        """``lines``: (text, quad) in reading order; ``page_size``: (width, height) in pixels;
        ``probabilities``: the line classes as another model saw them (cross-validation)."""
        rows, rights = rows_of(lines)
        found: dict[str, Found | None] = {"date": find_date(rows), "total": self._total(rows, page_size)}
        if probabilities is None:
            probabilities = self.line_probabilities(rows, rights, page_size)
        found["company"], found["address"] = _blocks(rows, rights, probabilities, self.extend)
        out = {}
        for name in FIELDS:
            item = found[name]
            if item is None or not item.text.strip():
                continue
            boxes = tuple(tuple(round(float(v), 1) for v in np.asarray(lines[i][1]).reshape(-1)) for i in item.lines)
            out[name] = KeyField(name, item.text, item.value, item.currency, item.confidence, item.lines, boxes)
        return out


    def _total(self, rows: list[Row], page_size: tuple[float, float]) -> Found | None:
        if self.totals is None:
            return find_total(rows)
        found = candidates(rows)
        if not found:
            return None
        scores = np.asarray(self.totals.predict(candidate_features(rows, found, page_size)), np.float32)
        chances = np.exp(scores - scores.max())
        chances /= chances.sum()  # the ranker's scores as a share among this receipt's amounts
        best = found[int(scores.argmax())]
        text = best.text
        if best.currency is not None and not self.total_currency[currency_form(best.text)]:
            text = text[text.index(best.value[0]):]
        return Found(text, best.value, float(chances.max()), best.row_lines, best.currency)


def _block(column: np.ndarray, allowed: np.ndarray, extend: tuple[float, float],
           stops: np.ndarray | None = None, ends: np.ndarray | None = None) -> tuple[int, ...]:
    """The most likely allowed line, and the lines next to it at or above ``extend`` (up,
    down): a receipt has one seller and one address, so the best line is taken even when it
    is not sure. A ``stops`` line may be the best line but is never joined to it; an ``ends``
    line may close the block but nothing below it is joined."""
    scores = np.where(allowed, column, -1.0)
    if len(scores) == 0 or scores.max() < 0.05:
        return ()
    joinable = scores if stops is None else np.where(stops, -1.0, scores)
    seed = int(scores.argmax())
    start, end = seed, seed
    closes = np.zeros(len(scores), bool) if ends is None else ends
    while start > 0 and joinable[start - 1] >= extend[0] and not closes[start - 1]:
        start -= 1
    while end + 1 < len(scores) and joinable[end + 1] >= extend[1] and not closes[end]:
        end += 1
    return tuple(range(start, end + 1))


def _not_address(rows: list[Row]) -> np.ndarray:
    """Lines that name the document or a contact and carry no address word, postcode or
    state ("TAX INVOICE", "TEL : ..."): the line classifier's low threshold for joining a
    neighbour to the address block would otherwise take them in."""
    return np.array([bool(DOCUMENT.search(r.text) or CONTACT.search(r.text))
                     and not (ADDRESS.search(r.text) or POSTCODE.search(r.text) or STATE.search(r.text))
                     for r in rows], bool)


_COMPANY_NUMBER = r"(?:CO(?:MPANY)?\.?\s*[-.]?\s*(?:REG(?:ISTRATION)?\.?\s*)?(?:NO\.?)?\s*[:.]?\s*)"
# a seller's registration printed after its name: "(139386 X)", "(CO. NO. 12345-X)", "12345-X", "CO-REG:"
REGISTRATION_TAIL = re.compile(r"\s*(?:[\[(]\s*" + _COMPANY_NUMBER + r"?\d{3,}\s*-?\s*[A-Z]?\s*[\])]"
                               r"|" + _COMPANY_NUMBER + r"?\d{3,}\s*-\s*[A-Z]"
                               r"|CO\.?\s*-?\s*REG(?:ISTRATION)?\.?\s*(?:NO\.?)?\s*:?)\s*$", re.I)


def _fragment_of(rows: list[Row], rights: list[float], left: int, right: int) -> bool:
    """Whether lines ``left`` and ``right`` (next in reading order) are pieces of one printed
    line: the detector parts a widely spaced title ("SAM SAM | TRADING | CO") into words."""
    a, b = rows[left], rows[right]
    height = min(a.bottom - a.top, b.bottom - b.top)
    overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    return overlap > 0.6 * max(a.bottom - a.top, b.bottom - b.top) and b.left - rights[left] < FRAGMENT_GAP * height


# at most this many line heights between the pieces of one printed line
FRAGMENT_GAP = 2.0


def _with_fragments(rows: list[Row], rights: list[float], indices: tuple[int, ...]) -> tuple[int, ...]:
    if not indices:
        return indices
    start, end = indices[0], indices[-1]
    while start > 0 and _fragment_of(rows, rights, start - 1, start):
        start -= 1
    while end + 1 < len(rows) and _fragment_of(rows, rights, end, end + 1):
        end += 1
    return tuple(range(start, end + 1))


# a tax registration printed after the address on its last line: "SELANGOR (GST ID: ...)"
TAX_TAIL = re.compile(r"\s*[\[(]?\s*\b(?:GST|SST)\b.*$", re.I)
# a legal entity's suffix ends its registered name
LEGAL_NAME = re.compile(r"\b(?:SDN\.?\s*BHD|BHD|BERHAD|S/B|PLT|LTD|LIMITED)\b\.?", re.I)
# a line of at least this many words, suffix included, is a whole legal name ("FOUR QUARTERS SDN BHD")
WHOLE_NAME_WORDS = 4


def _without_brand(rows: list[Row], rights: list[float], indices: tuple[int, ...]) -> tuple[int, ...]:
    """The seller's block from its first whole legal name on: a brand or branch printed over
    the registered name is not the seller (out of fold over the training vendors, 192 → 197
    of 232 sellers right)."""
    whole = [i for i in indices if LEGAL_NAME.search(rows[i].text) and len(rows[i].text.split()) >= WHOLE_NAME_WORDS]
    if not whole or whole[0] == indices[0] or _fragment_of(rows, rights, whole[0] - 1, whole[0]):
        return indices
    return tuple(i for i in indices if i >= whole[0])


def _blocks(rows: list[Row], rights: list[float], probabilities: np.ndarray, extend: Extension
            ) -> tuple[Found | None, Found | None]:
    if not rows:
        return None, None
    everywhere = np.ones(len(rows), bool)
    name_ends = np.array([bool(REGISTRATION_TAIL.search(r.text) or LEGAL_NAME.search(r.text)) for r in rows], bool)
    company = _without_brand(rows, rights, _with_fragments(
        rows, rights, _block(probabilities[:, 1], everywhere, extend["company"], ends=name_ends)))
    below = np.arange(len(rows)) > (company[-1] if company else -1)
    stops = _not_address(rows)
    address = _with_fragments(rows, rights, _block(probabilities[:, 2], below, extend["address"], stops)
                              or _block(probabilities[:, 2], everywhere, extend["address"], stops))

    def found(indices: tuple[int, ...], column: int) -> Found | None:
        if not indices:
            return None
        # a seller's name is printed with its registration number, an address with the
        # seller's tax number (which ends it): neither number is part of the field
        if column == 2:
            taxed = next((k for k, i in enumerate(indices) if TAX_TAIL.search(rows[i].text)), len(indices))
            indices = indices[:taxed + 1]
        tail = REGISTRATION_TAIL if column == 1 else TAX_TAIL
        text = " ".join(filter(None, (tail.sub("", rows[i].text.strip()) for i in indices))) \
            or " ".join(rows[i].text.strip() for i in indices)
        if column == 1:  # nor anything printed after the legal suffix, which ends the name
            suffixes = list(LEGAL_NAME.finditer(text))
            text = text[:suffixes[-1].end()] if suffixes else text
        return Found(text, None, float(np.mean(probabilities[list(indices), column])), indices)

    return found(company, 1), found(address, 2)


def _rule_probabilities(rows: list[Row]) -> np.ndarray:
    """The rule the classifier is measured against: the seller is the first line that looks
    like a business name (else the first line); the address is the run of lines under it
    with address words, a postcode or a state, up to a contact or registration line."""
    out = np.zeros((len(rows), len(CLASSES)), np.float32)
    out[:, 0] = 1.0
    seller = next((i for i, r in enumerate(rows[:8]) if SELLER.search(r.text)), 0)
    out[seller] = (0.0, 1.0, 0.0)
    for i in range(seller + 1, min(len(rows), seller + 7)):
        text = rows[i].text
        if CONTACT.search(text) or (REGISTRATION.search(text) and not POSTCODE.search(text)):
            if out[:, 2].any():
                break
            continue
        if ADDRESS.search(text) or POSTCODE.search(text) or STATE.search(text) or text.rstrip().endswith(","):
            out[i] = (0.0, 0.0, 1.0)
        elif out[:, 2].any():
            break
    return out
