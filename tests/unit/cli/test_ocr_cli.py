"""`billstream ocr` as a user runs it: JSON lines per image, exit code on bad files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from producers.samples import render_bill


def test_ocr_writes_one_json_object_per_image(tmp_path: Path) -> None:
    images = tmp_path / "bills"
    images.mkdir()
    (images / "a.png").write_bytes(render_bill(["TOTAL: 12.20", "CASH 20.00"]))
    (images / "b.png").write_bytes(render_bill(["THANK YOU"]))
    (images / "c.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "billstream_cli.main", "ocr", str(images), "--jsonl", str(out),
                           "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # one file could not be read
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in records] == ["a.png", "b.png", "c.jpg"]
    first = records[0]
    assert "TOTAL" in " ".join(line["text"].upper() for line in first["lines"])
    for line in first["lines"]:
        assert set(line) == {"text", "confidence", "box", "page"} and len(line["box"]) == 8 and line["page"] == 0
        assert 0 <= line["confidence"] <= 1
    assert first["key_fields"]["total"]["text"] == "12.20" and first["key_fields"]["total"]["value"] == "12.20"
    assert all(r["seconds"] > 0 for r in records)
    assert records[2]["error_code"] == "UNSUPPORTED_FORMAT" and records[2]["lines"] == []


def test_ocr_on_a_directory_without_images_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "looks-like.png").mkdir()  # a directory named like an image is not an image
    (tmp_path / "notes.txt").write_text("hello")
    done = subprocess.run([sys.executable, "-m", "billstream_cli.main", "ocr", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no image files" in done.stderr and "Traceback" not in done.stderr
