"""Each long-running process's probes and metrics, scraped after real bills went through:
every bill submitted here shows in the counts."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from billstream_core.settings import Settings
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.pipeline import (
    ServiceProcess,
    WorkerProcess,
    assert_each_order_once,
    collect_results,
    isolated_settings,
    stop_all,
    wait_http,
)
from tests.support.services import free_port


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics, by name and sorted labels."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def probe(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_worker_and_stream_app_count_every_bill_submitted(services: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(services)
    worker_port = free_port()
    worker_url = f"http://127.0.0.1:{worker_port}"
    stream = ServiceProcess(settings, "stream", tmp_path, ["stream-app"])
    worker = WorkerProcess(settings, "w-metrics", tmp_path, env={"BILLSTREAM_WORKER__PROBE_PORT": str(worker_port)})
    try:
        wait_http(settings)
        submitter = BillSubmitter(settings)
        images = [render_bill([f"METRICS SHOP {n}", f"TOTAL {n}.50"]) for n in range(3)]
        orders = {submitter.submit(image).order_number for image in images}
        first = collect_results(settings, orders, timeout=180)
        repeat = submitter.submit(images[0]).order_number  # answered from the cache
        broken = submitter.submit(b"not a bill, just text").order_number  # FAILED, with its code
        found = collect_results(settings, orders | {repeat, broken}, timeout=120)
        assert_each_order_once("metrics", orders | {repeat, broken}, found)
        assert set(first) == orders

        assert probe(f"{worker_url}/healthz")[0] == 200
        status, ready = probe(f"{worker_url}/readyz")
        assert status == 200 and "assigned" in ready["detail"]
        worker_samples = scrape(worker_url)
        code = found[broken][0]["error_code"]
        assert value(worker_samples, "billstream_worker_bills_total", status="RECOGNIZED", error_code="") == 3
        assert value(worker_samples, "billstream_worker_bills_total", status="FAILED", error_code=code) == 1
        assert value(worker_samples, "billstream_worker_transactions_total", outcome="commit") >= 2
        assert value(worker_samples, "billstream_worker_engine_batch_pages_sum") == 3  # one page per bill
        assert value(worker_samples, "billstream_worker_fetch_seconds_count") == 4
        versions = [dict(labels)["version"] for (name, labels) in worker_samples if name == "billstream_model_info"]
        assert versions == [found[repeat][0]["model_version"]]
        lag = [v for (name, labels), v in worker_samples.items() if name == "billstream_consumer_lag"]
        assert lag and all(v >= 0 for v in lag)  # one series per assigned partition

        assert probe(f"{settings.stream.url}/healthz")[0] == 200
        assert probe(f"{settings.stream.url}/readyz")[0] == 200
        stream_samples = scrape(settings.stream.url)
        cached = value(stream_samples, "billstream_cache_answers_total", hop="first") \
            + value(stream_samples, "billstream_cache_answers_total", hop="image")
        assert cached == 1 and found[repeat][0]["cached"] is True
        assert value(stream_samples, "billstream_router_routed_total") == 4  # three images and the broken file
        assert value(stream_samples, "billstream_state_entries", table="image_index") >= 3
        assert value(stream_samples, "billstream_stream_results_total", status="RECOGNIZED", error_code="") == 4
        assert value(stream_samples, "billstream_router_transactions_total", outcome="commit") > 0
    finally:
        stop_all(worker, stream)
