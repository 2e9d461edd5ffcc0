"""Reading a request body into bills, with every limit checked while the bytes arrive.

The body is never taken whole first: a declared ``Content-Length`` over the limit is refused
before one byte is read, and a chunked body is counted as it streams and refused as soon as
it passes the limit. A multipart body is parsed incrementally, so each file's own limit and
type are checked on its first bytes.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from billstream_core.media import SUPPORTED_TYPES, sniff_content_type
from billstream_core.settings import ApiSettings, LimitSettings

ACCEPTED_TYPES = SUPPORTED_TYPES | {"application/pdf"}
_NAMES = {"image/jpeg": "a JPEG", "image/png": "a PNG", "image/webp": "a WebP", "image/tiff": "a TIFF",
          "application/pdf": "a PDF", "image/gif": "a GIF", "image/bmp": "a BMP"}
_TEXT_FIELDS = {"order_number", "attr"}
_MAX_FIELD_BYTES = 4096


class RequestRefused(Exception):
    """A request the API answers with an error status and a JSON body."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


@dataclass
class UploadedBill:
    filename: str | None
    data: bytes
    content_type: str


@dataclass
class UploadedForm:
    bills: list[UploadedBill] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{n} bytes"


def describe_type(media_type: str) -> str:
    return _NAMES.get(media_type, "not an image or PDF")


def _check_type(name: str, media_type: str) -> None:
    if media_type not in ACCEPTED_TYPES:
        raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE",
                             f"{name}: this file is {describe_type(media_type)}; send JPEG, PNG, WebP, TIFF or PDF")


def _too_large(name: str, media_type: str, size: int | None, limit: int) -> RequestRefused:
    what = describe_type(media_type) if media_type != "application/octet-stream" else "a file"
    size_text = f"{_size(size)}, " if size is not None else ""
    return RequestRefused(413, "PAYLOAD_TOO_LARGE",
                          f"{name}: this file is {what} and too large ({size_text}over the {_size(limit)} limit)")


def declared_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise RequestRefused(400, "BAD_REQUEST", "Content-Length is not a number")
    return int(raw)


async def read_raw_bill(chunks: AsyncIterator[bytes], headers: Mapping[str, str], limits: LimitSettings,
                        filename: str | None = None) -> UploadedBill:
    """A body that is the bill itself (``Content-Type: image/jpeg``, ``application/pdf``...)."""
    name = filename or "the body"
    limit = limits.max_image_bytes
    length = declared_length(headers)
    if length is not None and length > limit:
        raise _too_large(name, "application/octet-stream", length, limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(name, sniff_content_type(bytes(body[:16])), None, limit)
    if not body:
        raise RequestRefused(400, "EMPTY_BODY", "the request has no body: send the bill's bytes")
    data = bytes(body)
    media_type = sniff_content_type(data)
    _check_type(name, media_type)
    return UploadedBill(filename, data, media_type)


class _FormCollector:
    """Callbacks for python-multipart's push parser; raises as soon as a limit is crossed."""

    def __init__(self, limits: LimitSettings, max_files: int) -> None:
        self.limits, self.max_files = limits, max_files
        self.form = UploadedForm()
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._part = bytearray()
        self._kind: str | None = None  # "file", "field" or None (ignored)
        self._name = ""
        self._filename: str | None = None

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._header_name, self._part, self._kind = {}, b"", bytearray(), None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        name = self._header_name.lower()
        self._headers[name] = self._headers.get(name, b"") + data[start:end]

    def _header_end(self) -> None:
        self._header_name = b""

    def _headers_done(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise RequestRefused(400, "BAD_MULTIPART", "each part needs Content-Disposition: form-data; name=...")
        self._name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None:
            self._kind = "file"
            self._filename = filename.decode("utf-8", "replace") or None
            if len(self.form.bills) >= self.max_files:
                raise RequestRefused(413, "TOO_MANY_FILES", f"at most {self.max_files} files in one request")
        elif self._name in _TEXT_FIELDS:
            self._kind = "field"
        else:
            self._kind = None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._kind is None:
            return
        self._part += data[start:end]
        if self._kind == "field" and len(self._part) > _MAX_FIELD_BYTES:
            raise RequestRefused(400, "BAD_REQUEST", f"the form field {self._name!r} is over {_MAX_FIELD_BYTES} bytes")
        if self._kind == "file" and len(self._part) > self.limits.max_image_bytes:
            raise _too_large(self._filename or "a file", sniff_content_type(bytes(self._part[:16])), None,
                             self.limits.max_image_bytes)

    def _end(self) -> None:
        if self._kind == "file":
            data = bytes(self._part)
            name = self._filename or f"file {len(self.form.bills) + 1}"
            if not data:
                raise RequestRefused(400, "EMPTY_FILE", f"{name}: the file is empty")
            media_type = sniff_content_type(data)
            _check_type(name, media_type)
            self.form.bills.append(UploadedBill(self._filename, data, media_type))
        elif self._kind == "field":
            self.form.fields.setdefault(self._name, []).append(self._part.decode("utf-8", "replace"))


async def read_multipart(chunks: AsyncIterator[bytes], content_type: str, headers: Mapping[str, str],
                         limits: LimitSettings, api: ApiSettings) -> UploadedForm:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestRefused(400, "BAD_MULTIPART", "multipart/form-data without a boundary")
    length = declared_length(headers)
    if length is not None and length > api.max_body_bytes:
        raise RequestRefused(413, "PAYLOAD_TOO_LARGE",
                             f"the request is {_size(length)}, over the {_size(api.max_body_bytes)} limit")
    collector = _FormCollector(limits, api.max_files)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > api.max_body_bytes:
            raise RequestRefused(413, "PAYLOAD_TOO_LARGE", f"the request is over the {_size(api.max_body_bytes)} limit")
        parser.write(chunk)
    parser.finalize()
    if not collector.form.bills:
        raise RequestRefused(400, "NO_FILES", "the form has no file: add one part with a filename")
    return collector.form
