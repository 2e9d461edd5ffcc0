"""Avro serde over fastavro, in Avro's single-object encoding.

Each message is ``C3 01`` + the 8-byte CRC-64-AVRO fingerprint of the writer schema +
the binary body. The fingerprint lets a reader tell "not ours / unknown version" from a
corrupt body, which is what a dead-letter decision needs, without a schema registry.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from billstream_core.errors import DecodeError, SchemaError

MAGIC = b"\xc3\x01"
_HEADER_LEN = len(MAGIC) + 8
_VERSION_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")


def default_schema_dir() -> Path:
    from schemas import SCHEMA_DIR

    return SCHEMA_DIR


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    parsed: Any
    fingerprint: bytes


def _load_versions(name: str, schema_dir: Path) -> list[SchemaVersion]:
    versions: list[SchemaVersion] = []
    for path in sorted(schema_dir.glob(f"{name}.v*.avsc")):
        match = _VERSION_RE.match(path.name)
        if match is None or match["name"] != name:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            parsed = fastavro.parse_schema(raw)
        except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
            raise SchemaError(f"schema {path.name} cannot be loaded: {exc}") from exc
        digest = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        versions.append(SchemaVersion(int(match["version"]), parsed, bytes.fromhex(digest)))
    if not versions:
        raise SchemaError(f"no schema files {name}.v<N>.avsc in {schema_dir}")
    return sorted(versions, key=lambda v: v.version)


class AvroCodec:
    """Encode with the newest version of one record schema; decode any known version."""

    def __init__(self, name: str, schema_dir: Path | None = None) -> None:
        self.name = name
        versions = _load_versions(name, schema_dir or default_schema_dir())
        self._writer = versions[-1]
        self._by_fingerprint = {v.fingerprint: v for v in versions}

    @property
    def version(self) -> int:
        return self._writer.version

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            validate(record, self._writer.parsed, raise_errors=True)
        except AvroValidationError as exc:
            raise SchemaError(f"{self.name} record does not match schema v{self.version}: {exc}") from exc
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(self._writer.fingerprint)
        fastavro.schemaless_writer(buffer, self._writer.parsed, dict(record))
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if not data or len(data) < _HEADER_LEN or not data.startswith(MAGIC):
            raise DecodeError(f"not an Avro single-object {self.name} message (bad or missing header)")
        writer = self._by_fingerprint.get(bytes(data[2:_HEADER_LEN]))
        if writer is None:
            raise DecodeError(f"unknown {self.name} schema fingerprint {data[2:_HEADER_LEN].hex()}")
        buffer = io.BytesIO(data)
        buffer.seek(_HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(buffer, writer.parsed, self._writer.parsed)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError) as exc:
            raise DecodeError(f"corrupt {self.name} body: {exc.__class__.__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise DecodeError(f"corrupt {self.name} body: {len(data) - buffer.tell()} trailing bytes")
        return record  # type: ignore[return-value]


_codecs: dict[tuple[str, Path | None], AvroCodec] = {}


def codec(name: str, schema_dir: Path | None = None) -> AvroCodec:
    """Schemas are parsed once per process and shared."""
    key = (name, schema_dir)
    if key not in _codecs:
        _codecs[key] = AvroCodec(name, schema_dir)
    return _codecs[key]
