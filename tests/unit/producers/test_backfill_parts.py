import time
from pathlib import Path

import pytest

from billstream_core.errors import BillstreamError
from producers.backfill import Ledger, RateLimiter, list_inputs


def test_ledger_survives_a_torn_last_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("a.jpg", "11" * 32, "ORD-A")
    with open(ledger.path, "a") as out:
        out.write('{"path": "b.jpg", "sha2')  # crash while writing
    reread = Ledger(ledger.path)
    assert reread.done == {("a.jpg", "11" * 32): "ORD-A"}


def test_rate_limiter_spaces_calls() -> None:
    limiter = RateLimiter(20.0)
    started = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - started >= 5 / 20 - 0.02
    unlimited = RateLimiter(None)
    started = time.monotonic()
    for _ in range(100):
        unlimited.wait()
    assert time.monotonic() - started < 0.05


def test_inputs_from_directory_and_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "sub/c.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_inputs(tmp_path)] == ["a.PNG", "b.jpg", "c.tiff"]
    manifest = tmp_path / "list.txt"
    manifest.write_text("# bills\nb.jpg\nsub/c.tiff\t extra column\n\n")
    assert list_inputs(manifest) == [tmp_path / "b.jpg", tmp_path / "sub" / "c.tiff"]
    with pytest.raises(BillstreamError):
        list_inputs(tmp_path / "missing")
