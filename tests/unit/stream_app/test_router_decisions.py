"""The router's decisions (cache, single flight, dedupe, versions) with in-memory stand-ins
for the consumer and the transactional producer: no broker, seconds to run. The
real-broker tests in tests/integration/pipeline cover the same paths end to end."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings
from inference_worker import results
from stream_app.router import KIND, RESULT, SUBMITTED, ImageRouter
from tests.support.fakes import FakeConsumer, FakeMessage, FakeTransactions

VERSION = "aaaa.bbbb.cccc.dddd+onnx-int8.beam"
PARTITIONS = 4


@pytest.fixture
def settings() -> Settings:
    return load_settings(topics={"submitted_partitions": PARTITIONS, "work_partitions": PARTITIONS,
                                 "results_partitions": PARTITIONS})


class Harness:
    def __init__(self, settings: Settings, state_dir: Path, version: str = VERSION) -> None:
        self.settings = settings
        self.producer = FakeTransactions()
        self.router = ImageRouter(settings, model_version=version, instance_id="unit", state_dir=state_dir,
                                  consumer=FakeConsumer(), producer=self.producer)  # type: ignore[arg-type]
        self.router._image_partitions = PARTITIONS
        for partition in range(PARTITIONS):  # one router owns every partition
            self.router.index.adopt(partition)
            self.router.orders.adopt(partition)
        self.offset = 0
        self._submitted, self._result = codec("BillSubmitted"), codec("BillResult")

    def _message(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None):
        self.offset += 1
        return FakeMessage(topic, 0, self.offset, key, value, headers)

    def submission(self, order: str, sha: str) -> FakeMessage:
        event = {"schema_version": 1, "order_number": order, "submitted_at_ms": 1,
                 "image": {"bucket": "bills", "key": sha, "sha256": sha, "size_bytes": 10, "content_type": "image/png"},
                 "source": "test", "attributes": {}}
        return self._message(self.settings.topics.submitted, order.encode(), self._submitted.encode(event))

    def result(self, order: str, sha: str, *, version: str = VERSION, code: str | None = None) -> FakeMessage:
        if code is None:
            record = results.recognized(order, sha, [], "TOTAL 1.00", model_name="m", model_version=version,
                                        timings_ms={}, warnings=[], submitted_at_ms=1)
        else:
            record = results.failed(order, code, "boom", sha256=sha, model_name="m", model_version=version)
        return self._message(self.settings.topics.results, order.encode(), self._result.encode(record))

    def feed(self, *messages: FakeMessage) -> list[tuple[str, bytes | None, Any, int | None]]:
        """One poll's worth; what its transaction wrote (nothing when none was opened)."""
        before = len(self.producer.committed)
        self.router._process(list(messages))  # type: ignore[arg-type]
        return self.producer.committed[before] if len(self.producer.committed) > before else []

    def to(self, written: list[tuple[str, bytes | None, Any, int | None]], topic: str) -> list[dict[str, Any]]:
        decoder = self._result if topic == self.settings.topics.results else self._submitted
        return [decoder.decode(value) for name, value, _, _ in written if name == topic and value is not None]


SHA = "ab" * 32


@pytest.fixture
def harness(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Routers over the same settings, each with its own state directory."""
    made: list[Harness] = []

    def make(version: str = VERSION) -> Harness:
        made.append(Harness(settings, tmp_path / f"state-{len(made)}", version))
        return made[-1]

    yield make
    for h in made:
        h.router.store.close()


def test_a_new_image_goes_to_work_once_and_a_repeat_in_flight_waits(settings: Settings, harness: Callable[..., Harness]) -> None:
    h = harness()
    written = h.feed(h.submission("O-1", SHA), h.submission("O-2", SHA))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-1"]
    assert h.to(written, settings.topics.results) == []
    written = h.feed(h.result("O-1", SHA))  # the worker's answer for the lead
    answered = h.to(written, settings.topics.results)
    assert [(r["order_number"], r["cached"]) for r in answered] == [("O-2", True)]
    assert h.router.stats["routed_new"] == 1 and h.router.stats["waiting"] == 1


def test_a_repeat_after_the_result_is_answered_from_cache_and_a_resent_order_is_dropped(settings: Settings, harness: Callable[..., Harness]) -> None:
    h = harness()
    h.feed(h.submission("O-1", SHA))
    h.feed(h.result("O-1", SHA))
    written = h.feed(h.submission("O-3", SHA))
    assert [(r["order_number"], r["cached"], r["page_text"]) for r in h.to(written, settings.topics.results)] == \
        [("O-3", True, "TOTAL 1.00")]
    assert h.to(written, settings.topics.work) == []
    again = h.feed(h.submission("O-3", SHA))  # the same order number sent again
    assert h.to(again, settings.topics.results) == [] and h.to(again, settings.topics.work) == []


def test_a_transient_failure_is_not_cached_and_each_waiter_goes_to_work(settings: Settings, harness: Callable[..., Harness]) -> None:
    h = harness()
    h.feed(h.submission("O-1", SHA), h.submission("O-2", SHA))
    written = h.feed(h.result("O-1", SHA, code="STORAGE_UNAVAILABLE"))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-2"]
    assert h.to(written, settings.topics.results) == []
    written = h.feed(h.submission("O-4", SHA))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-4"]  # a new inference


def test_a_result_of_another_model_version_is_never_served_to_other_orders(settings: Settings, harness: Callable[..., Harness]) -> None:
    """A worker running another decoder (or backend, or precision) produces another version:
    its text answers its own order, never the waiters' or a later repeat's."""
    h = harness()
    h.feed(h.submission("O-1", SHA), h.submission("O-2", SHA))
    greedy = VERSION.replace(".beam", ".greedy")
    written = h.feed(h.result("O-1", SHA, version=greedy))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-2"]
    assert h.to(written, settings.topics.results) == []
    written = h.feed(h.submission("O-5", SHA))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-5"]
    assert h.router.stats["foreign_versions"] == 1


def test_an_image_recognised_under_another_version_is_recognised_again(settings: Settings, harness: Callable[..., Harness]) -> None:
    old = harness(version=VERSION.replace("+onnx-int8", "+torch-fp16"))
    old.feed(old.submission("O-1", SHA))
    old.feed(old.result("O-1", SHA, version=old.router.model_version))
    h = harness()
    for partition in range(PARTITIONS):  # the image index as the new deployment restores it
        h.router.index.write(partition, [(sha, json.dumps(entry).encode()) for sha, entry in old.router.index.items(partition)])
    written = h.feed(h.submission("O-6", SHA))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-6"]
    assert h.to(written, settings.topics.results) == []


def test_a_result_read_back_for_a_cached_answer_opens_no_transaction(settings: Settings, harness: Callable[..., Harness]) -> None:
    h = harness()
    h.feed(h.submission("O-1", SHA))
    h.feed(h.result("O-1", SHA))
    h.feed(h.submission("O-7", SHA))
    cached = results.recognized("O-7", SHA, [], "x", model_name="m", model_version=VERSION, timings_ms={},
                                warnings=[], submitted_at_ms=1) | {"cached": True}
    before = len(h.producer.committed)
    h.router._process([h._message(settings.topics.results, b"O-7", h._result.encode(cached))])  # type: ignore[list-item]
    assert len(h.producer.committed) == before and h.router._deferred  # its offset rides with the next one


def test_records_from_the_by_image_topic_are_routed_by_their_kind(settings: Settings, harness: Callable[..., Harness]) -> None:
    """With several routers, submissions and results reach the image's owner through the
    by-image topic, marked by a header."""
    h = harness()
    by_image = h.router.by_image
    submission = h.submission("O-8", SHA)
    written = h.feed(FakeMessage(by_image, 1, 1, SHA.encode(), submission.value(), [(KIND, SUBMITTED)]))
    assert [e["order_number"] for e in h.to(written, settings.topics.work)] == ["O-8"]
    h.feed(FakeMessage(by_image, 1, 2, SHA.encode(), h.submission("O-9", SHA).value(), [(KIND, SUBMITTED)]))
    result = h.result("O-8", SHA)
    written = h.feed(FakeMessage(by_image, 1, 3, SHA.encode(), result.value(), [(KIND, RESULT)]))
    assert [r["order_number"] for r in h.to(written, settings.topics.results)] == ["O-9"]
