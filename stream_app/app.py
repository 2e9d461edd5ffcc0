"""The Faust stream app: routes submissions, answers repeats from cache, keeps the tables.

  bills.submitted ─route─▶ (by image sha256) ─route_by_image─┬▶ cached result ─▶ bills.results
                                                              ├▶ waiter of an in-flight image
                                                              └▶ new image ─▶ bills.work
  bills.results ─collect─▶ orders table ─▶ (by image) ─settle─▶ answers the waiters from cache

Known gap (faust-streaming issues #596, #216): events fetched while Faust is still
recovering its tables after a start or rebalance can be committed without reaching an
agent. Callers wait for ``GET /ready``; a rebalance mid-flight can still drop a
submission, which is why routing is to move to a transactional confluent-kafka router.

Tables (changelog-backed, recovered on restart): ``orders`` (order → pending | done with
its result) and ``images`` (sha256 → in flight | done, the waiters, the result). Values
are JSON; no pickle codec anywhere. Updates are idempotent, so a replay after a crash
neither answers an order twice from cache nor forgets a waiter.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import faust

from billstream_core.errors import BillstreamError, DecodeError
from billstream_core.serde import codec
from billstream_core.settings import Settings, TopicSpec
from stream_app import records

log = logging.getLogger("billstream.stream")


class PartitionLayoutError(BillstreamError):
    code = "BAD_SETTINGS"


def internal_topics(settings: Settings) -> list[TopicSpec]:
    """The app's repartition topics. Created before Faust starts: on a broker that is still
    warming up, Faust may subscribe before its own creation lands and then ignore them."""
    partitions = settings.topics.submitted_partitions
    return [TopicSpec(name=f"{settings.stream.app_id}-submitted-by-image", partitions=partitions),
            TopicSpec(name=f"{settings.stream.app_id}-results-by-image", partitions=partitions)]


def build_app(settings: Settings, *, model_version: str) -> faust.App:
    topics, stream = settings.topics, settings.stream
    partitions = topics.submitted_partitions
    if topics.results_partitions != partitions:
        raise PartitionLayoutError(
            f"the stream app keeps one orders table for {topics.submitted} and {topics.results}: they need the "
            f"same partition count ({partitions} vs {topics.results_partitions})")
    app = faust.App(
        stream.app_id, broker=[f"kafka://{s.strip()}" for s in settings.kafka.bootstrap_servers.split(",")],
        store="memory://", web_host=stream.web_host, web_bind=stream.web_host, web_port=stream.web_port,
        topic_partitions=partitions, topic_replication_factor=topics.replication_factor,
        processing_guarantee=stream.processing_guarantee, consumer_auto_offset_reset="earliest",
        web_in_thread=False, table_standby_replicas=0,
        key_serializer="raw", value_serializer="json",  # tables: JSON values, never the pickle codec
    )
    def raw_topic(name: str, count: int, internal: bool = False) -> Any:
        return app.topic(name, partitions=count, internal=internal, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    submitted = raw_topic(topics.submitted, partitions)
    results = raw_topic(topics.results, partitions)
    work = raw_topic(topics.work, topics.work_partitions)
    by_image_spec, results_by_image_spec = internal_topics(settings)
    by_image = raw_topic(by_image_spec.name, partitions, internal=True)
    results_by_image = raw_topic(results_by_image_spec.name, partitions, internal=True)
    orders = app.Table("orders", default=None, partitions=partitions, key_type=str)
    images = app.Table("images", default=None, partitions=partitions, key_type=str)
    submitted_codec, result_codec = codec("BillSubmitted"), codec("BillResult")
    stats = {"routed_new": 0, "answered_from_cache": 0, "waiting": 0, "settled": 0}

    async def answer_from(result: dict[str, Any], order: str, event_bytes: bytes) -> None:
        try:
            submitted_at = submitted_codec.decode(event_bytes)["submitted_at_ms"]
        except DecodeError:
            submitted_at = None
        copy = records.cached_copy(result, order, submitted_at)
        await results.send(key=order.encode(), value=result_codec.encode(copy))
        stats["answered_from_cache"] += 1

    @app.agent(submitted)
    async def route(stream: Any) -> None:
        async for key, value in stream.items():
            try:
                event = submitted_codec.decode(value)
            except DecodeError:
                await work.send(key=key, value=value)  # the worker dead-letters it and answers FAILED
                continue
            order = event["order_number"]
            current = orders.get(order)
            if current is not None and current.get("state") == "done":
                continue  # a replay, or the same order re-sent after its result
            if current is None:
                orders[order] = {"state": "pending", "result": None}
            await by_image.send(key=event["image"]["sha256"].encode(), value=value)

    @app.agent(by_image)
    async def route_by_image(stream: Any) -> None:
        async for key, value in stream.items():
            sha = key.decode()
            event = submitted_codec.decode(value)
            order = event["order_number"]
            entry = images.get(sha)
            if entry is not None and entry["model_version"] != model_version:
                entry = None  # recognised by an older model: recognise again
            if entry is None:
                images[sha] = records.new_entry(order, model_version)
                await work.send(key=order.encode(), value=value)
                stats["routed_new"] += 1
            elif entry["state"] == "done":
                if order not in entry["answered"]:
                    await answer_from(entry["result"], order, value)  # answer first: a crash repeats, never loses
                    entry["answered"].append(order)
                    images[sha] = entry
            elif order != entry["lead"] and records.add_waiter(entry, order, value):
                images[sha] = entry
                stats["waiting"] += 1

    @app.agent(results)
    async def collect(stream: Any) -> None:
        async for key, value in stream.items():
            try:
                result = result_codec.decode(value)
            except DecodeError as exc:
                log.warning("undecodable result for %r: %s", key, exc)
                continue
            orders[result["order_number"]] = {"state": "done", "result": result}
            if not result["cached"] and result.get("image_sha256"):
                await results_by_image.send(key=result["image_sha256"].encode(), value=value)

    @app.agent(results_by_image)
    async def settle(stream: Any) -> None:
        async for key, value in stream.items():
            sha = key.decode()
            result = result_codec.decode(value)
            entry = images.get(sha)
            if entry is None or entry["state"] == "done" or result["order_number"] != entry["lead"]:
                continue
            waiters = entry["waiters"]
            if records.cacheable(result):
                for waiter in waiters:
                    await answer_from(result, waiter["order"], records.waiter_event(waiter))
                entry.update(state="done", result=result, waiters=[],
                             answered=entry["answered"] + [w["order"] for w in waiters])
                images[sha] = entry
            else:
                images.pop(sha, None)  # a transient failure: nothing to reuse, each waiter goes to work
                for waiter in waiters:
                    await work.send(key=waiter["order"].encode(), value=records.waiter_event(waiter))
            stats["settled"] += 1

    @app.page("/orders/{order_number}")
    async def get_order(web: Any, request: Any, order_number: str) -> Any:
        entry = orders.get(order_number)
        if entry is None:
            return web.json({"order_number": order_number, "status": "UNKNOWN"}, status=404)
        if entry["state"] != "done":
            return web.json({"order_number": order_number, "status": "PENDING"}, status=202)
        return web.json(entry["result"], status=200)

    @app.page("/ready")
    async def get_ready(web: Any, request: Any) -> Any:
        """200 only once partitions are assigned and the tables recovered (see the module note)."""
        recovery: Any = getattr(app.tables, "recovery")
        assigned = {tp.topic for tp in app.consumer.assignment()}
        ready = {submitted.get_topic_name(), results.get_topic_name(), by_image.get_topic_name(),
                 results_by_image.get_topic_name()} <= assigned and not app.rebalancing \
            and recovery.completed.is_set() and not recovery.in_recovery
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/stats")
    async def get_stats(web: Any, request: Any) -> Any:
        return web.json(stats | {"model_version": model_version, "time": time.time()})

    return app
