"""BillResult records: the one terminal answer of an order (RECOGNIZED or FAILED + code)."""
from __future__ import annotations

from typing import Any

from billstream_core.clock import now_ms

ERROR_CODES = frozenset({"OBJECT_NOT_FOUND", "EMPTY_OBJECT", "IMAGE_TOO_LARGE", "UNSUPPORTED_FORMAT", "CORRUPT_IMAGE",
                         "ENCRYPTED_DOCUMENT", "EMPTY_DOCUMENT", "TOO_MANY_PAGES", "STORAGE_UNAVAILABLE",
                         "UNDECODABLE_EVENT", "INTERNAL"})


def recognized(order_number: str, sha256: str, lines: list[dict[str, Any]], page_text: str, *,
               model_name: str, model_version: str, timings_ms: dict[str, float], warnings: list[str],
               submitted_at_ms: int | None, key_fields: list[dict[str, Any]] | None = None,
               page_count: int = 1, page_rotations: list[int] | None = None,
               text_source: str = "ocr") -> dict[str, Any]:
    """``key_fields``: the details (name, text, value, currency, confidence, lines, boxes)."""
    details = key_fields or []
    return {
        "schema_version": 2, "order_number": order_number, "status": "RECOGNIZED", "error_code": None,
        "error_message": None, "image_sha256": sha256, "lines": lines, "page_text": page_text,
        "key_fields": {item["name"]: item["text"] for item in details}, "key_field_details": details,
        "warnings": warnings, "model_name": model_name, "model_version": model_version, "timings_ms": timings_ms,
        "cached": False, "submitted_at_ms": submitted_at_ms, "completed_at_ms": now_ms(), "page_count": page_count,
        "page_rotations": page_rotations or [], "text_source": text_source,
    }


def failed(order_number: str, code: str, message: str, *, sha256: str | None = None,
           model_name: str | None = None, model_version: str | None = None,
           timings_ms: dict[str, float] | None = None, submitted_at_ms: int | None = None) -> dict[str, Any]:
    if code not in ERROR_CODES:
        code, message = "INTERNAL", f"{code}: {message}"
    return {
        "schema_version": 2, "order_number": order_number, "status": "FAILED", "error_code": code,
        "error_message": message[:1000], "image_sha256": sha256, "lines": [], "page_text": "", "key_fields": {},
        "key_field_details": [], "warnings": [], "model_name": model_name, "model_version": model_version,
        "timings_ms": timings_ms or {}, "cached": False, "submitted_at_ms": submitted_at_ms,
        "completed_at_ms": now_ms(), "page_count": 1, "page_rotations": [], "text_source": "ocr",
    }
