"""How a result reads on a terminal: one line of status and first text, one of key fields."""
from __future__ import annotations

from typing import Any

FIELD_ORDER = ("company", "date", "address", "total")


def format_fields(fields: dict[str, str]) -> str:
    """The printed text of each key field; ``-`` where none was found."""
    return "  fields: " + " | ".join(f"{name}={fields.get(name) or '-'}" for name in FIELD_ORDER)


def format_result(record: dict[str, Any], *, lines: int = 3) -> str:
    head = " | ".join(line["text"] for line in record["lines"][:lines])
    status = record["status"] + (f" {record['error_code']}" if record["error_code"] else "")
    seconds = (record["completed_at_ms"] - record["submitted_at_ms"]) / 1000 if record.get("submitted_at_ms") else None
    timing = f"{seconds:.2f}s" if seconds is not None else "-"
    first = f"{record['order_number']}  {status:<28} {'cached' if record['cached'] else 'fresh ':<6} {timing:>7}  {head}"
    if record["status"] != "RECOGNIZED":
        return first
    return first + "\n" + format_fields(record.get("key_fields") or {})
