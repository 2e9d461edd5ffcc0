"""A full object store (MinIO on a small tmpfs): submissions, backfills and uploads of new
images fail with a clear error and announce nothing; an image already stored is still accepted;
a backfill stops at once and resumes when space is back."""
from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from bench.faults.disk import small_disk
from billstream_core.errors import StorageFull
from billstream_core.kafka import topic_end_offset
from billstream_core.settings import Settings
from producers.backfill import Ledger, backfill
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.api import ApiProcess, api_settings
from tests.support.pipeline import isolated_settings


def events_in(settings: Settings) -> int:
    return topic_end_offset(settings.kafka, settings.topics.submitted)


def bill(tag: str) -> bytes:
    return render_bill([f"FULL DISK {tag} {uuid.uuid4().hex[:8]}", "TOTAL 9.99"])


def test_a_full_store_refuses_new_images_clearly_and_announces_nothing(services: Settings) -> None:
    with small_disk(isolated_settings(services), size_mb=32) as disk:
        submitter = BillSubmitter(disk.settings, source="test")
        stored = bill("stored")
        submitter.submit(stored)
        disk.fill()
        before = events_in(disk.settings)
        with pytest.raises(StorageFull, match="object store is full"):
            submitter.submit(bill("new"))
        assert events_in(disk.settings) == before  # nothing announced for the refused bill
        submitter.submit(stored)  # its image is already there: nothing to write
        assert events_in(disk.settings) == before + 1
        disk.free()
        submitter.submit(bill("after"))
        assert events_in(disk.settings) == before + 2


def test_a_backfill_halts_on_a_full_store_and_resumes_once_space_is_back(services: Settings, tmp_path: Path) -> None:
    paths = []
    for n in range(12):
        path = tmp_path / f"bill-{n:02d}.png"
        path.write_bytes(bill(f"backfill {n}"))
        paths.append(path)
    with small_disk(isolated_settings(services), size_mb=32) as disk:
        submitter = BillSubmitter(disk.settings, source="backfill")
        ledger_path = tmp_path / "ledger.jsonl"
        disk.fill()
        report = backfill(submitter, paths, Ledger(ledger_path), concurrency=2)
        assert report.halted is not None and "full" in report.halted
        assert report.submitted == 0 and len(report.failed) < len(paths)  # it stopped, not tried all twelve
        assert all("StorageFull" in error for error in report.failed.values())
        assert events_in(disk.settings) == 0 and not Ledger(ledger_path).done
        disk.free()
        again = backfill(submitter, paths, Ledger(ledger_path), concurrency=2)
        assert (again.submitted, again.failed, again.halted) == (len(paths), {}, None)
        assert events_in(disk.settings) == len(paths)


def test_the_api_answers_507_storage_full_and_announces_nothing(services: Settings, tmp_path: Path) -> None:
    with small_disk(isolated_settings(services), size_mb=32) as disk:
        settings = api_settings(disk.settings, tmp_path / "keys.json", allow_anonymous=True)
        api = ApiProcess(settings, "api", tmp_path)
        try:
            api.wait_ready()
            disk.fill()
            response = httpx.post(f"{api.url}/v1/bills", content=bill("api"), headers={"Content-Type": "image/png"},
                                  timeout=60)
            assert response.status_code == 507, response.text
            assert response.json()["code"] == "STORAGE_FULL" and "full" in response.json()["message"]
            assert events_in(disk.settings) == 0
        finally:
            api.terminate()
