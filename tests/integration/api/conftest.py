"""One pipeline (stream app + worker) and two API instances, shared by the API's tests."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from billstream_core.settings import Settings
from tests.support.api import ApiProcess, api_settings, create_key
from tests.support.pipeline import ServiceProcess, WorkerProcess, isolated_settings, stop_all, wait_http


@dataclass
class FrontDoor:
    settings: Settings  # instance A's
    a: ApiProcess
    b: ApiProcess
    key: str
    log_dir: Path


@pytest.fixture(scope="module")
def front_door(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    log_dir = tmp_path_factory.mktemp("api")
    keys_file = log_dir / "api-keys.json"
    pipeline = isolated_settings(services)
    # small limits, so that refusing a body over them costs the tests little
    small = {"limits": {"max_image_bytes": 2 * 1024 * 1024}, "max_body_bytes": 8 * 1024 * 1024, "max_wait_s": 120}
    settings_a = api_settings(pipeline, keys_file, **small)  # type: ignore[arg-type]
    settings_b = api_settings(pipeline, keys_file, **small)  # type: ignore[arg-type]
    _, key = create_key(settings_a, "tests")
    stream = ServiceProcess(pipeline, "stream", log_dir, ["stream-app"])
    worker = WorkerProcess(pipeline, "w-api", log_dir)
    a, b = ApiProcess(settings_a, "api-a", log_dir), ApiProcess(settings_b, "api-b", log_dir)
    try:
        wait_http(pipeline)
        a.wait_ready()
        b.wait_ready()
        yield FrontDoor(settings_a, a, b, key, log_dir)
    finally:
        stop_all(a, b, stream, worker)
