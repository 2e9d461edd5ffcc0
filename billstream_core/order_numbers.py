"""Order numbers: generated ones sort by creation time; caller-given ones are validated.

The format is a contract between producers and workers (a worker answers an undecodable
event under its Kafka key only when the key is a valid order number)."""
from __future__ import annotations

import os
import re

from billstream_core.clock import now_ms as clock_ms
from billstream_core.errors import BillstreamError

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: sortable as text
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class InvalidOrderNumber(BillstreamError):
    code = "INVALID_ORDER_NUMBER"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_order_number(now_ms: int | None = None) -> str:
    """48-bit millisecond time + 80 random bits, ULID layout: unique and time-sortable."""
    stamp = clock_ms() if now_ms is None else now_ms
    return _base32(stamp, 10) + _base32(int.from_bytes(os.urandom(10), "big"), 16)


def is_valid_order_number(value: str) -> bool:
    return _VALID.match(value) is not None


def validate_order_number(value: str) -> str:
    if not is_valid_order_number(value):
        raise InvalidOrderNumber(
            f"invalid order number {value[:40]!r}: 1-128 chars of letters, digits and . _ : / -, "
            "starting with a letter or digit")
    return value
