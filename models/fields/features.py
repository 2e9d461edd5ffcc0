"""Per-line features for the seller and address classifier: layout, character make-up,
keyword families, and the same for the lines just above and below (a seller's name sits
above a registration number, an address above a telephone line)."""
from __future__ import annotations

import re

import numpy as np

from models.fields.rules import Row

SELLER = re.compile(r"\b(?:SDN|BHD|BERHAD|ENTERPRISES?|TRADING|RESTAURANT|RESTORAN|S/B|PLT|MART|SHOP|STORE|CAFE|"
                    r"BAKERY|HARDWARE|STATIONERY|SUPERMARKET|HOLDINGS|INDUSTRIES|LTD|\(M\)|CO\.?|KEDAI|TRADERS?|"
                    r"MARKETING|SERVICES?|GIFT|BOOK|PHARMACY|FARMASI)\b", re.I)
ADDRESS = re.compile(r"\b(?:JALAN|JLN|TAMAN|TMN|LOT|LORONG|BATU|KG|KAMPUNG|PERSIARAN|BANDAR|SEKSYEN|SEK|BLOK|"
                     r"BLOCK|LEVEL|TINGKAT|PLAZA|WISMA|KOMPLEKS|PUSAT|INDUSTRIAL|PARK|AVENUE|ROAD|MALL)\b|"
                     r"\bNO\.?\s*\d", re.I)
STATE = re.compile(r"\b(?:SELANGOR|JOHOR|KUALA LUMPUR|PERAK|PAHANG|MELAKA|MALACCA|KEDAH|PENANG|PULAU PINANG|"
                   r"NEGERI SEMBILAN|SABAH|SARAWAK|KELANTAN|TERENGGANU|PUTRAJAYA|PERLIS|LABUAN|MALAYSIA|"
                   r"D\.?\s*E\.?|W\.?\s*P\.?)\b", re.I)
POSTCODE = re.compile(r"(?<!\d)\d{5}(?!\d)")
CONTACT = re.compile(r"\b(?:TEL|PHONE|FAX|H/P|HP|EMAIL|E-MAIL|WWW|HTTP)\b|@|\.COM", re.I)
REGISTRATION = re.compile(r"\b(?:GST|REG|ROC|CO\.?\s*NO|COMPANY\s*NO|BUSINESS|SST|ID)\b|\d{4,}-[A-Z]\b|\(\d+-[A-Z]\)", re.I)
DOCUMENT = re.compile(r"\b(?:INVOICE|RECEIPT|BILL|TAX|CASH|CASHIER|DATE|TIME|TABLE|ORDER|SALES|QTY|TOTAL|"
                      r"AMOUNT|PRICE|CHANGE|ITEM|DESCRIPTION|THANK)\b", re.I)
AMOUNT = re.compile(r"\d+\.\d{2}\b")

BASE = ("index", "first_rows", "top", "left", "right", "width", "height", "length", "alpha", "digits", "upper",
        "punct", "words", "commas", "ends_comma", "seller", "address", "state", "postcode", "contact",
        "registration", "document", "amount")
NAMES = tuple(f"{where}_{name}" for where in ("this", "above", "below") for name in BASE) + (
    "lines", "before_contact", "before_document", "address_above")


def _base(row: Row, index: int, pages: tuple[float, float], median_height: float) -> list[float]:
    width, height = pages
    text = row.text
    letters = [c for c in text if c.isalpha()]
    n = max(len(text), 1)
    return [
        index, float(index < 6), row.top / height, row.left / width, 0.0, 0.0,
        (row.bottom - row.top) / max(median_height, 1.0), len(text),
        len(letters) / n, sum(c.isdigit() for c in text) / n,
        sum(c.isupper() for c in letters) / max(len(letters), 1),
        sum(not c.isalnum() and not c.isspace() for c in text) / n, len(text.split()), text.count(","),
        float(text.rstrip().endswith(",")), float(bool(SELLER.search(text))), float(bool(ADDRESS.search(text))),
        float(bool(STATE.search(text))), float(bool(POSTCODE.search(text))), float(bool(CONTACT.search(text))),
        float(bool(REGISTRATION.search(text))), float(bool(DOCUMENT.search(text))), float(bool(AMOUNT.search(text))),
    ]


def line_features(rows: list[Row], rights: list[float], page_size: tuple[float, float]) -> np.ndarray:
    """One row of ``NAMES`` per line, lines in reading order; ``rights`` the lines' right edges."""
    n = len(rows)
    if n == 0:
        return np.zeros((0, len(NAMES)), np.float32)
    median_height = float(np.median([r.bottom - r.top for r in rows]))
    base = np.array([_base(r, i, page_size, median_height) for i, r in enumerate(rows)], np.float32)
    base[:, 4] = np.array(rights, np.float32) / page_size[0]
    base[:, 5] = base[:, 4] - base[:, 3]
    pad = np.full((1, base.shape[1]), -1.0, np.float32)
    above = np.vstack([pad, base[:-1]])
    below = np.vstack([base[1:], pad])
    column = {name: k for k, name in enumerate(BASE)}

    def first(flag: str) -> int:
        hits = np.nonzero(base[:, column[flag]] > 0)[0]
        return int(hits[0]) if len(hits) else n

    contact, document = first("contact"), first("document")
    index = np.arange(n, dtype=np.float32)
    extra = np.stack([
        np.full(n, n, np.float32), (index < contact).astype(np.float32), (index < document).astype(np.float32),
        np.concatenate([[0.0], np.cumsum(base[:-1, column["address"]] + base[:-1, column["postcode"]])]),
    ], axis=1).astype(np.float32)
    return np.hstack([base, above, below, extra])
