"""The first hop's view of recognised images: what it keeps from the image index changelog."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from billstream_core.settings import load_settings
from stream_app import records
from stream_app.changelogs import RecognisedImages
from stream_app.state import StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state")
    yield store
    store.close()


def done(result: dict, model_version: str = "v1") -> dict:
    entry = records.new_entry("LEAD", model_version)
    entry.update(state="done", result=result)
    return entry


def test_keeps_finished_reusable_results_of_its_model_only(store: StateStore) -> None:
    view = RecognisedImages(load_settings(), "unused", model_version="v1", store=store)
    ok = {"order_number": "LEAD", "status": "RECOGNIZED", "error_code": None}
    view.apply("A", records.new_entry("LEAD", "v1"))  # in flight: single flight is the image hop's job
    view.apply("B", done(ok))
    view.apply("C", done(ok, model_version="v0"))  # an older model's reading
    view.apply("D", done({"status": "FAILED", "error_code": "STORAGE_UNAVAILABLE"}))
    view.apply("E", done({"status": "FAILED", "error_code": "CORRUPT_IMAGE"}))
    assert (view.get("A"), view.get("B"), view.get("C"), view.get("D")) == (None, ok, None, None)
    assert view.get("E") is not None and len(view) == 2


def test_a_tombstone_or_a_restarted_inference_forgets_the_image(store: StateStore) -> None:
    view = RecognisedImages(load_settings(), "unused", model_version="v1", store=store)
    view.apply("B", done({"status": "RECOGNIZED", "error_code": None}))
    view.apply("B", None)
    assert view.get("B") is None
    view.apply("C", done({"status": "RECOGNIZED", "error_code": None}))
    view.apply("C", records.new_entry("OTHER", "v1"))
    assert view.get("C") is None
    assert len(view) == 0  # counted as it goes, never below zero for a key it did not hold
    view.apply("Z", None)
    assert len(view) == 0
