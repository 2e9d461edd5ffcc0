"""The stream app with a real worker: cache answers, single flight, the HTTP view, restart."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition

from billstream_core.kafka import make_consumer, topic_end_offset
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


def http_get(settings: Settings, order: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{settings.stream.url}/orders/{order}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def work_events(settings: Settings, timeout: float = 5) -> list[str]:
    consumer = make_consumer(settings.kafka, f"work-{uuid.uuid4().hex}", read_committed=False)
    consumer.subscribe([settings.topics.work])
    keys: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            keys.append((message.key() or b"").decode())
    consumer.close()
    return keys


def stream_and_worker(services: Settings, tmp_path: Path, worker_id: str
                      ) -> tuple[Settings, ServiceProcess, WorkerProcess, BillSubmitter]:
    """Fresh topics, a stream app and one worker on them, and a submitter."""
    settings = isolated_settings(services)
    return (settings, ServiceProcess(settings, "stream", tmp_path, ["stream-app"]),
            WorkerProcess(settings, worker_id, tmp_path), BillSubmitter(settings))


def test_cache_single_flight_and_http_view_survive_a_restart(services: Settings, tmp_path: Path) -> None:
    settings, stream, worker, submitter = stream_and_worker(services, tmp_path, "w-stream")
    try:
        wait_http(settings)
        first_image = render_bill(["CACHE ME", "TOTAL 9.99"])
        first = submitter.submit(first_image).order_number
        assert collect_results(settings, {first}, timeout=120)[first][0]["cached"] is False
        repeat = submitter.submit(first_image).order_number  # same bytes, already recognised

        shared = render_bill(["TWICE AT ONCE", "TOTAL 5.55"])  # a new image sent twice concurrently
        together: list[str] = []
        threads = [threading.Thread(target=lambda: together.append(BillSubmitter(settings).submit(shared).order_number))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        orders = {first, repeat, *together}
        found = collect_results(settings, orders, timeout=120)
        assert all(len(found[o]) == 1 for o in orders), {o: len(found.get(o, [])) for o in orders}
        assert found[repeat][0]["cached"] is True
        assert found[repeat][0]["page_text"] == found[first][0]["page_text"]
        assert sorted(found[o][0]["cached"] for o in together) == [False, True]
        # one inference per distinct image: the work topic saw the first order of each image only
        work = work_events(settings)
        assert sorted(work) == sorted([first, *[o for o in together if not found[o][0]["cached"]]])

        status, body = http_get(settings, repeat)
        assert status == 200 and body["order_number"] == repeat and body["cached"] is True
        assert http_get(settings, "NO-SUCH-ORDER")[0] == 404

        assert stream.terminate() == 0, stream.log_path.read_text()[-3000:]
        stream.close()
        stream = ServiceProcess(settings, "stream-restarted", tmp_path, ["stream-app"])
        wait_http(settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and http_get(settings, first)[0] != 200:
            time.sleep(0.5)
        for order in orders:  # the recovered table agrees with the results topic
            status, body = http_get(settings, order)
            assert status == 200, (order, body)
            assert (body["status"], body["cached"], body["page_text"]) == (
                found[order][0]["status"], found[order][0]["cached"], found[order][0]["page_text"])
    finally:
        stop_all(stream, worker)


def stats(settings: Settings) -> dict:
    with urllib.request.urlopen(f"{settings.stream.url}/stats", timeout=5) as response:
        return json.loads(response.read())


def router_lag_on_results(settings: Settings, timeout: float) -> dict[int, tuple[int, int]]:
    """Results partitions whose router-committed offset is short of the offset after their
    last record: partition → (committed, needed), once none is or ``timeout`` passes. (The
    end offset itself lies past the last transaction's commit marker, never committed.)"""
    topic = settings.topics.results
    tail = make_consumer(settings.kafka, f"tail-{uuid.uuid4().hex}")
    offsets = make_consumer(settings.kafka, f"{settings.stream.app_id}-router")  # never subscribes: reads offsets only
    try:
        partitions = [TopicPartition(topic, p) for p in tail.list_topics(topic, timeout=10).topics[topic].partitions]
        tail.assign([TopicPartition(topic, tp.partition, 0) for tp in partitions])
        needed: dict[int, int] = {}
        idle_until = time.monotonic() + 3
        while time.monotonic() < idle_until:
            message = tail.poll(0.2)
            if message is not None and message.error() is None:
                partition, offset = message.partition() or 0, message.offset() or 0
                needed[partition] = max(needed.get(partition, 0), offset + 1)
                idle_until = time.monotonic() + 3
        deadline = time.monotonic() + timeout
        while True:
            committed = {tp.partition: tp.offset for tp in offsets.committed(partitions, timeout=10)}
            lagging = {p: (committed[p], n) for p, n in needed.items() if committed[p] < n}
            if not lagging or time.monotonic() > deadline:
                return lagging
            time.sleep(0.5)
    finally:
        tail.close()
        offsets.close()


def test_a_repeat_is_answered_in_the_first_hop_and_an_order_number_sent_again_gets_no_second_result(
        services: Settings, tmp_path: Path) -> None:
    settings, stream, worker, submitter = stream_and_worker(services, tmp_path, "w-first-hop")
    try:
        wait_http(settings)
        image = render_bill(["FIRST HOP", "TOTAL 3.30"])
        first = submitter.submit(image).order_number
        collect_results(settings, {first}, timeout=120, settle=0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stats(settings)["recognised_images"] < 1:
            time.sleep(0.2)  # the image hop marks the image recognised just after the result lands
        repeat = submitter.submit(image).order_number
        collect_results(settings, {repeat}, timeout=60, settle=0.5)
        # the router reads its cached answer back: nothing to write, so no transaction of its
        # own, yet its offset commits once the router idles (nothing else is on the way)
        lagging = router_lag_on_results(settings, timeout=15)
        submitter.submit(image, order_number=repeat)  # a client retrying an order answered from cache
        submitter.submit(image, order_number=first)  # and one that was recognised
        found = collect_results(settings, {first, repeat}, timeout=60, settle=5)
        counters = stats(settings)
    finally:
        stop_all(stream, worker)
    assert counters["deferred_offsets"] >= 1 and lagging == {}, (counters, lagging)
    assert {o: len(found[o]) for o in (first, repeat)} == {first: 1, repeat: 1}
    assert found[repeat][0]["cached"] is True and found[repeat][0]["page_text"] == found[first][0]["page_text"]
    assert counters["answered_first_hop"] == 1 and counters["routed_new"] == 1, counters
    # one router owns every partition: the image hop ran in place for the new image and the first order's retry
    assert counters["image_hop_in_place"] == 2, counters
    assert counters["dropped_repeats"] == 1, counters  # the retried repeat; the first order's retry went to the image hop


def test_stream_app_kill_9_and_restart_answers_every_order_once(services: Settings, tmp_path: Path) -> None:
    settings, stream, worker, submitter = stream_and_worker(services, tmp_path, "w-kill-stream")
    try:
        wait_http(settings)
        images = [render_bill([f"KILL TEST {i}", f"TOTAL {i}.25"]) for i in range(10)]
        orders = {submitter.submit(image, flush=False).order_number for image in images + images}  # every image twice
        submitter.flush()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(collect_results(settings, orders, timeout=3, settle=0.1)) < 3:
            pass
        stream.process.kill()  # SIGKILL: no clean shutdown, tables only in the changelog
        stream.process.wait(10)
        stream.close()
        stream = ServiceProcess(settings, "stream-restarted", tmp_path, ["stream-app"])
        found = collect_results(settings, orders, timeout=240, settle=8)
    finally:
        stop_all(stream, worker)
    assert_each_order_once("stream-app kill -9", orders, found, settings=settings, log_dir=tmp_path)


def test_submissions_before_and_during_the_stream_app_start_all_get_one_result(services: Settings,
                                                                               tmp_path: Path) -> None:
    """The case Faust alone lost an order in: events that arrive while its tables recover."""
    settings = isolated_settings(services)
    submitter = BillSubmitter(settings)
    images = [render_bill([f"EARLY {i}", f"TOTAL {i}.40"]) for i in range(6)]
    early = {submitter.submit(image, flush=False).order_number for image in images + images[:2]}
    submitter.flush()
    worker = WorkerProcess(settings, "w-early", tmp_path)
    stream = ServiceProcess(settings, "stream", tmp_path, ["stream-app", "--loglevel", "info"])  # its assignments
    try:
        during = {submitter.submit(image, flush=False).order_number for image in images[2:4]}  # not waiting for /ready
        submitter.flush()
        orders = early | during
        found = collect_results(settings, orders, timeout=240, settle=5)
    finally:
        stop_all(stream, worker)
    assert_each_order_once("submitted before/while starting", orders, found, settings=settings, log_dir=tmp_path)
    inferred = sum(not found[o][0]["cached"] for o in orders)
    assert inferred == len(images), f"{inferred} inferences for {len(images)} distinct images"


def test_two_stream_apps_one_killed_mid_burst_answer_each_order_once_with_one_inference_per_image(
        services: Settings, tmp_path: Path) -> None:
    """With two routers each owns part of the partitions, so submissions and results whose
    image belongs to the other router are repartitioned through the by-image topic. One of
    them is killed with -9 in the middle of a burst of repeated images and restarted."""
    from stream_app.router import router_topics
    from tests.support.services import free_port

    settings = isolated_settings(services)
    other = settings.model_copy(update={"stream": settings.stream.model_copy(update={"web_port": free_port()})})
    first = ServiceProcess(settings, "stream-a", tmp_path, ["stream-app", "--instance-id", "a"])
    second = ServiceProcess(other, "stream-b", tmp_path, ["stream-app", "--instance-id", "b"])
    worker = WorkerProcess(settings, "w-two-apps", tmp_path)
    restarted = None
    try:
        wait_http(settings)
        wait_http(other)
        submitter = BillSubmitter(settings)
        images = [render_bill([f"TWO ROUTERS {i}", f"TOTAL {i}.75"]) for i in range(8)]
        orders = {submitter.submit(image, flush=False).order_number for image in images * 3}  # each image 3 times
        submitter.flush()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(collect_results(settings, orders, timeout=3, settle=0.1)) < 3:
            pass
        second.kill()  # SIGKILL mid-burst: its open transaction, its partitions' state only in the changelogs
        restarted = ServiceProcess(other, "stream-b-restarted", tmp_path, ["stream-app", "--instance-id", "b"])
        found = collect_results(settings, orders, timeout=240, settle=8)
        repartitioned = topic_end_offset(settings.kafka, router_topics(settings).by_image.name)
        wait_http(other)
        # either app answers for any order: one in the other's partitions is forwarded there,
        # so both give the same answer (some orders can be missing from the view: see
        # docs/architecture.md, "the view with several stream apps")
        answers = {app.stream.web_port: [_order_status(app, order) for order in sorted(orders)]
                   for app in (settings, other)}
    finally:
        stop_all(first, second, restarted, worker)
    assert_each_order_once("two stream apps, one killed", orders, found, settings=settings, log_dir=tmp_path)
    inferred = sum(not found[o][0]["cached"] for o in orders)
    assert inferred == len(images), f"{inferred} inferences for {len(images)} distinct images"
    assert repartitioned > 0, "no record went through the by-image topic: the two-router path was not exercised"
    first_answers, second_answers = answers.values()
    assert first_answers == second_answers and 200 in first_answers, answers


def _order_status(settings: Settings, order: str) -> int:
    try:
        with urllib.request.urlopen(f"{settings.stream.url}/orders/{order}", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_deployment_with_another_decoder_does_not_reuse_cached_answers(services: Settings, tmp_path: Path) -> None:
    """The cache key is the image and the model version, and the version names the decoder: a
    deployment switched from greedy decoding to beam search recognises a known image again."""
    settings = isolated_settings(services)
    greedy = settings.model_copy(update={"worker": settings.worker.model_copy(update={"decoder": "greedy"})})
    image = render_bill(["DECODER SWITCH", "TOTAL 3.30"])
    stream = ServiceProcess(greedy, "stream-greedy", tmp_path, ["stream-app"])
    worker = WorkerProcess(greedy, "w-greedy", tmp_path)
    try:
        wait_http(greedy)
        first = BillSubmitter(greedy).submit(image).order_number
        before = collect_results(greedy, {first}, timeout=120, settle=0.5)[first][0]
    finally:
        stop_all(stream, worker)
    stream = ServiceProcess(settings, "stream-beam", tmp_path, ["stream-app"])
    worker = WorkerProcess(settings, "w-beam", tmp_path)
    try:
        wait_http(settings)
        submitter = BillSubmitter(settings)
        second = submitter.submit(image).order_number
        after = collect_results(settings, {second}, timeout=120, settle=0.5)[second][0]
        third = submitter.submit(image).order_number
        repeat = collect_results(settings, {third}, timeout=60, settle=0.5)[third][0]
    finally:
        stop_all(stream, worker)
    assert before["model_version"].endswith(".greedy") and before["cached"] is False
    assert after["model_version"].endswith(".beam") and after["cached"] is False, after["model_version"]
    assert repeat["cached"] is True and repeat["model_version"] == after["model_version"]
    assert sorted(work_events(settings)) == sorted([first, second])  # two inferences, one per decoder
