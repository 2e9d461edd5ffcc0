"""Request bodies into bills: limits decided while the body streams, types by magic bytes."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from billstream_core.settings import ApiSettings, LimitSettings
from http_api.intake import RequestRefused, read_multipart, read_raw_bill

PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 100
PDF = b"%PDF-1.7\n" + b"d" * 100
LIMITS = LimitSettings(max_image_bytes=4096)
API = ApiSettings(max_body_bytes=16384, max_files=3)
BOUNDARY = "xYzBoundary"


async def _chunks(body: bytes, size: int, seen: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        if seen is not None:
            seen.append(start + size)
        yield body[start:start + size]


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def multipart(body: bytes, chunk: int = 7, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(read_multipart(_chunks(body, chunk), f"multipart/form-data; boundary={BOUNDARY}",
                                      headers or {}, LIMITS, API))


def test_a_form_streamed_in_small_chunks_gives_each_file_and_field() -> None:
    parsed = multipart(form(("file", "a.png", PNG), ("order_number", None, b"ORDER-7"), ("file", "b.pdf", PDF),
                            ("ignored", None, b"x")))
    assert [(b.filename, b.content_type, b.data) for b in parsed.bills] == [
        ("a.png", "image/png", PNG), ("b.pdf", "application/pdf", PDF)]
    assert parsed.fields == {"order_number": ["ORDER-7"]}


def test_a_file_over_the_limit_is_refused_by_name_and_type() -> None:
    with pytest.raises(RequestRefused) as refused:
        multipart(form(("file", "scan.pdf", b"%PDF-" + b"0" * 5000)))
    assert refused.value.status == 413 and "scan.pdf: this file is a PDF and too large" in refused.value.message


def test_a_wrong_type_too_many_files_and_no_file_are_refused() -> None:
    with pytest.raises(RequestRefused) as gif:
        multipart(form(("file", "x.gif", b"GIF89a" + b"0" * 20)))
    assert (gif.value.status, gif.value.code) == (415, "UNSUPPORTED_MEDIA_TYPE") and "a GIF" in gif.value.message
    with pytest.raises(RequestRefused) as many:
        multipart(form(*[("file", f"{n}.png", PNG) for n in range(4)]))
    assert (many.value.status, many.value.code) == (413, "TOO_MANY_FILES")
    with pytest.raises(RequestRefused) as none:
        multipart(form(("order_number", None, b"X")))
    assert none.value.code == "NO_FILES"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    seen: list[int] = []
    with pytest.raises(RequestRefused) as refused:
        asyncio.run(read_raw_bill(_chunks(PNG, 10, seen), {"content-length": str(2 * 1024 ** 3)}, LIMITS))
    assert refused.value.status == 413 and seen == []


def test_a_streamed_body_is_refused_once_past_the_limit_not_at_its_end() -> None:
    seen: list[int] = []
    body = PNG + b"0" * 100_000
    with pytest.raises(RequestRefused) as refused:
        asyncio.run(read_raw_bill(_chunks(body, 1000, seen), {}, LIMITS))
    assert refused.value.status == 413 and max(seen) <= LIMITS.max_image_bytes + 1000
    with pytest.raises(RequestRefused) as form_refused:
        multipart(form(*[("other", None, b"0" * 3000) for _ in range(8)]), chunk=1000)
    assert form_refused.value.status == 413


def test_a_raw_body_is_typed_by_its_bytes() -> None:
    bill = asyncio.run(read_raw_bill(_chunks(PDF, 16), {}, LIMITS, "bill.pdf"))
    assert (bill.content_type, bill.filename, bill.data) == ("application/pdf", "bill.pdf", PDF)
    with pytest.raises(RequestRefused) as text:
        asyncio.run(read_raw_bill(_chunks(b"just text", 4), {}, LIMITS))
    assert text.value.status == 415
    with pytest.raises(RequestRefused) as empty:
        asyncio.run(read_raw_bill(_chunks(b"", 4), {}, LIMITS))
    assert empty.value.code == "EMPTY_BODY"
