import json
from pathlib import Path

import pytest

from billstream_core.errors import DecodeError, SchemaError
from billstream_core.serde import AvroCodec, codec


def submitted(**overrides: object) -> dict:
    record = {
        "schema_version": 2, "order_number": "ORD-1", "submitted_at_ms": 1_700_000_000_000,
        "image": {"bucket": "bills", "key": "ab" * 32, "sha256": "ab" * 32, "size_bytes": 1234,
                  "content_type": "image/jpeg"},
        "source": "test", "attributes": {"shop": "42"}, "submitted_by": "User:producer",
    }
    record.update(overrides)
    return record


def result_record() -> dict:
    return {
        "order_number": "ORD-1", "status": "RECOGNIZED", "image_sha256": "ab" * 32,
        "lines": [{"text": "TOTAL 12.50", "confidence": 0.5, "box": [0, 0, 10, 0, 10, 5, 0, 5]}],
        "page_text": "TOTAL 12.50", "model_name": "crnn", "model_version": "1",
        "timings_ms": {"total": 12.5}, "cached": False, "completed_at_ms": 1_700_000_000_500,
    }


def test_bill_submitted_round_trip() -> None:
    c = codec("BillSubmitted")
    assert c.decode(c.encode(submitted())) == submitted()


def test_bill_result_round_trip_fills_defaults() -> None:
    c = codec("BillResult")
    decoded = c.decode(c.encode(result_record()))
    assert decoded["lines"][0]["text"] == "TOTAL 12.50"
    assert decoded["error_code"] is None and decoded["warnings"] == [] and decoded["key_fields"] == {}


def test_record_not_matching_schema_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="order_number"):
        codec("BillSubmitted").encode(submitted(order_number=None))
    with pytest.raises(SchemaError):
        codec("BillResult").encode(result_record() | {"status": "MAYBE"})


@pytest.mark.parametrize("payload", [
    b"", b"\x00\x01garbage", b"{\"order_number\": \"x\"}", b"\xc3\x01" + b"\x00" * 8 + b"abc",
])
def test_foreign_bytes_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        codec("BillSubmitted").decode(payload)


def test_truncated_and_padded_bodies_are_decode_errors() -> None:
    c = codec("BillSubmitted")
    data = c.encode(submitted())
    with pytest.raises(DecodeError, match="corrupt"):
        c.decode(data[:-5])
    with pytest.raises(DecodeError, match="trailing"):
        c.decode(data + b"\x00")


def test_other_record_type_is_rejected_by_fingerprint() -> None:
    data = codec("BillResult").encode(result_record())
    with pytest.raises(DecodeError, match="unknown"):
        codec("BillSubmitted").decode(data)


def test_old_schema_versions_still_decode(tmp_path: Path) -> None:
    from schemas import SCHEMA_DIR

    v1 = json.loads((SCHEMA_DIR / "BillSubmitted.v1.avsc").read_text())
    (tmp_path / "BillSubmitted.v1.avsc").write_text(json.dumps(v1))
    old = AvroCodec("BillSubmitted", tmp_path).encode(submitted())
    v2 = dict(v1, fields=v1["fields"] + [{"name": "priority", "type": "int", "default": 5}])
    (tmp_path / "BillSubmitted.v2.avsc").write_text(json.dumps(v2))
    reader = AvroCodec("BillSubmitted", tmp_path)
    assert reader.version == 2
    assert reader.decode(old)["priority"] == 5


def test_missing_or_broken_schema_files_are_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no schema files"):
        AvroCodec("Nope", tmp_path)
    (tmp_path / "Broken.v1.avsc").write_text("{\"type\": \"record\"")
    with pytest.raises(SchemaError, match="Broken.v1.avsc"):
        AvroCodec("Broken", tmp_path)


def _schema(name: str):  # type: ignore[no-untyped-def]
    import fastavro

    from schemas import SCHEMA_DIR

    return fastavro.parse_schema(json.loads((SCHEMA_DIR / name).read_text()))


def _write(record: dict, schema) -> bytes:  # type: ignore[no-untyped-def]
    import io

    import fastavro

    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


def _read(data: bytes, writer, reader) -> dict:  # type: ignore[no-untyped-def]
    import io

    import fastavro

    return fastavro.schemaless_reader(io.BytesIO(data), writer, reader)  # type: ignore[return-value]


def test_a_v1_reader_reads_a_v2_result_and_a_v2_reader_reads_a_v1_result() -> None:
    """BillResult evolves compatibly (fastavro's schema resolution, both directions)."""
    from inference_worker import results

    v1, v2 = _schema("BillResult.v1.avsc"), _schema("BillResult.v2.avsc")
    details = [{"name": "total", "text": "RM9.00", "value": "9.00", "currency": "RM", "confidence": 0.9,
                "lines": [0], "boxes": [[0.0, 0.0, 10.0, 0.0, 10.0, 5.0, 0.0, 5.0]]}]
    new = results.recognized("ORD-2", "ab" * 32, [{"text": "TOTAL RM9.00", "confidence": 0.9,
                                                   "box": [0, 0, 10, 0, 10, 5, 0, 5], "page": 1}],
                             "TOTAL RM9.00", model_name="m", model_version="v", timings_ms={"total_ms": 1.0},
                             warnings=[], submitted_at_ms=1, key_fields=details, page_count=2, page_rotations=[0, 180])
    as_v1 = _read(_write(new, v2), v2, v1)
    assert as_v1["key_fields"] == {"total": "RM9.00"} and as_v1["lines"][0]["text"] == "TOTAL RM9.00"
    assert "key_field_details" not in as_v1 and "page" not in as_v1["lines"][0]

    old = result_record() | {"schema_version": 1, "key_fields": {}}
    as_v2 = _read(_write(old, v1), v1, v2)
    assert as_v2["key_field_details"] == [] and as_v2["page_count"] == 1 and as_v2["page_rotations"] == []
    assert as_v2["lines"][0]["page"] == 0 and as_v2["text_source"] == "ocr"


def test_the_codec_writes_v2_and_still_reads_v1_records() -> None:
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    from billstream_core.serde import MAGIC

    v1 = _schema("BillResult.v1.avsc")
    header = MAGIC + bytes.fromhex(fingerprint(to_parsing_canonical_form(v1), "CRC-64-AVRO"))
    old = header + _write(result_record() | {"key_fields": {"date": "25/12/2018"}}, v1)
    read = codec("BillResult").decode(old)
    assert read["key_fields"] == {"date": "25/12/2018"} and read["key_field_details"] == []
    assert codec("BillResult").version == 2


def test_bill_submitted_v2_carries_who_submitted_and_reads_both_ways() -> None:
    """A v1 consumer skips submitted_by; a v2 consumer reads a v1 event as submitted by nobody known."""
    v1, v2 = _schema("BillSubmitted.v1.avsc"), _schema("BillSubmitted.v2.avsc")
    new = submitted() | {"schema_version": 2, "submitted_by": "key:k1"}
    as_v1 = _read(_write(new, v2), v2, v1)
    assert "submitted_by" not in as_v1 and as_v1["order_number"] == new["order_number"]
    old = {k: v for k, v in submitted().items() if k != "submitted_by"} | {"schema_version": 1}
    as_v2 = _read(_write(old, v1), v1, v2)
    assert as_v2["submitted_by"] is None and as_v2["image"] == old["image"]
    c = codec("BillSubmitted")
    assert c.version == 2 and c.decode(c.encode(new))["submitted_by"] == "key:k1"
