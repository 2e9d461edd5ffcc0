"""Logs as JSON lines, consumer lag from librdkafka's statistics, and the probe server."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from billstream_core.lag import ConsumerLag
from billstream_core.logs import JsonFormatter, configure_logging
from billstream_core.probes import ProbeServer


def test_a_json_log_line_carries_the_order_number_and_the_exception() -> None:
    record = logging.LogRecord("billstream.worker", logging.ERROR, __file__, 1, "order %s failed", ("B1",), None)
    record.order_number = "B1"
    try:
        raise ValueError("bad page")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "order B1 failed"
    assert entry["order_number"] == "B1"
    assert entry["level"] == "error" and entry["logger"] == "billstream.worker"
    assert "ValueError: bad page" in entry["exception"]
    assert "principal" not in entry  # absent fields are left out, not null


def test_configure_logging_json_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.INFO, "json")
    try:
        logging.getLogger("billstream.test").info("first\nsecond", extra={"order_number": "B2"})
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1  # a newline in a message stays inside its JSON string
        assert json.loads(lines[0])["order_number"] == "B2"
    finally:
        configure_logging(logging.WARNING, "text")


def _stats(partitions: dict[str, dict[str, object]]) -> str:
    return json.dumps({"topics": {"bills.work": {"partitions": partitions}}})


def test_consumer_lag_counts_assigned_partitions_only() -> None:
    lag = ConsumerLag("billstream-workers")
    lag.on_stats(_stats({
        "0": {"partition": 0, "fetch_state": "active", "consumer_lag": -1, "consumer_lag_stored": 7},
        "1": {"partition": 1, "fetch_state": "none", "consumer_lag": -1},  # not assigned here
        "-1": {"partition": -1, "fetch_state": "none", "consumer_lag": -1},  # librdkafka's UA partition
    }))
    assert lag.snapshot() == {("bills.work", 0): 7}
    registry = CollectorRegistry()
    registry.register(lag)
    text = generate_latest(registry).decode()
    assert 'billstream_consumer_lag{group="billstream-workers",partition="0",topic="bills.work"} 7.0' in text
    lag.on_stats(_stats({}))  # revoked: the partition's series goes
    assert "partition=\"0\"" not in generate_latest(registry).decode()


def test_probe_server_answers_health_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("probe_test_bills", "bills", registry=registry).inc(3)
    ready = {"ok": False}
    server = ProbeServer("127.0.0.1", 0, registry, alive=lambda: (True, "turning"),
                         ready=lambda: (ready["ok"], "2 partitions" if ready["ok"] else "starting")).start()
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            assert json.loads(response.read()) == {"ok": True, "detail": "turning"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/readyz", timeout=5)
        assert refused.value.code == 503
        ready["ok"] = True
        with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
            assert "probe_test_bills_total 3.0" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()
