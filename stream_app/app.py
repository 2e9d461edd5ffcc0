"""The Faust stream app: the queryable orders table and the HTTP view.

  bills.submitted ─track──▶ orders table (order → pending)      GET /orders/{n}: 202
  bills.results ───collect─▶ orders table (order → its result)  GET /orders/{n}: 200

Routing (cache, single flight, the work topic) is not done by Faust agents: it runs in
:mod:`stream_app.router` on Kafka transactions, in the same process, because Faust 0.15
can skip an event fetched while it recovers its tables (faust-streaming#596, #216). A
skipped event here only delays what ``GET`` shows; it cannot lose an order.

The table is changelog-backed and kept in RocksDB under the temp dir (one directory per
instance); values are JSON, no pickle codec.
"""
from __future__ import annotations

import logging
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from billstream_core.errors import DecodeError
from billstream_core.logs import logging_config
from billstream_core.serde import codec
from billstream_core.settings import KafkaSettings, Settings, TopicSpec
from stream_app.layout import check_partition_layout
from stream_app.metrics import StreamMetrics
from stream_app.router import ImageRouter, router_topics
from stream_app.waiters import OrderWaiters, parse_wait

log = logging.getLogger("billstream.stream")


def internal_topics(settings: Settings) -> list[TopicSpec]:
    """Topics the process needs beyond the public ones, created before anything starts."""
    return list(router_topics(settings))


def broker_credentials(kafka: KafkaSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The Faust (aiokafka) side of the same Kafka settings the confluent clients use."""
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None)
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=kafka.sasl_username, ssl_context=context, mechanism=kafka.sasl_mechanism,
                                 password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None)


_LEVELS = {"crit": "CRITICAL", "warn": "WARNING"}  # Faust's short names


def log_level(loglevel: str) -> str:
    """The logging level of one of Faust's ``--loglevel`` names."""
    return _LEVELS.get(loglevel, loglevel.upper())


def faust_worker(app: faust.App, loglevel: str, log_format: str = "text") -> faust.Worker:
    """Faust's worker without its terminal spinner. To spin on every log record, the spinner
    sets the root logger to DEBUG; every aiokafka request then built a debug record that
    no handler printed (a tenth of the stream app's CPU in a burst of bills, by py-spy)."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True,
                          logging_config=logging_config(log_level(loglevel), log_format))
    worker.spinner = None
    return worker


# The orders table on disk (RocksDB through rocksdict), so it does not hold every result in
# memory (in memory it grew ~60 KB an order on real receipts). One database per partition,
# each with its own write buffers and block cache, which fill up as orders come and then
# stay: kept small (3 MiB a partition at most), since a lookup by order number is a point
# read of a recent order, mostly still in the write buffer.
ROCKSDB_OPTIONS = {"driver": "rocksdict", "block_cache_size": 2**20, "block_cache_compressed_size": 0,
                   "write_buffer_size": 2**20, "max_write_buffer_number": 2, "max_open_files": 64}


def build_app(settings: Settings, *, model_version: str, router: ImageRouter | None = None,
              instance_id: str = "0") -> faust.App:
    """The app; ``router`` (run beside it) contributes to ``/ready`` and ``/stats``.
    ``instance_id`` names its data directory: two instances on one host never share a database."""
    topics, stream = settings.topics, settings.stream
    check_partition_layout(settings)
    partitions = topics.submitted_partitions
    datadir = Path(tempfile.gettempdir()) / "billstream-faust" / stream.app_id
    datadir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        stream.app_id, broker=[f"kafka://{s.strip()}" for s in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings.kafka),
        store="rocksdb://" if stream.store == "rocksdb" else "memory://",
        web_host=stream.web_host, web_bind=stream.web_bind or stream.web_host, web_port=stream.web_port,
        topic_partitions=partitions, topic_replication_factor=topics.replication_factor,
        processing_guarantee=stream.processing_guarantee, consumer_auto_offset_reset="earliest",
        web_in_thread=False, table_standby_replicas=0,
        # the table's changelog writes (two a bill) batch for 10 ms instead of one request each:
        # ~0.7 fewer produce requests a bill for the broker, on the cores the engine shares
        producer_linger=0.01,
        # the table's databases (or, in memory, Faust's own files), out of the working directory
        datadir=str(datadir / instance_id),
        key_serializer="raw", value_serializer="json",  # tables: JSON values, never the pickle codec
    )

    def raw_topic(name: str, count: int) -> Any:
        return app.topic(name, partitions=count, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    submitted = raw_topic(topics.submitted, partitions)
    results = raw_topic(topics.results, partitions)
    options: dict[str, Any] | None = dict(ROCKSDB_OPTIONS) if stream.store == "rocksdb" else None
    orders = app.Table("orders", default=None, partitions=partitions, key_type=str, options=options)
    submitted_codec, result_codec = codec("BillSubmitted"), codec("BillResult")

    @app.agent(submitted)
    async def track(stream: Any) -> None:
        async for _key, value in stream.items():
            try:
                event = submitted_codec.decode(value)
            except DecodeError:
                continue  # the router sends it to the worker, which answers FAILED
            order = event["order_number"]
            if orders.get(order) is None:
                orders[order] = {"state": "pending", "result": None, "image_sha256": event["image"]["sha256"]}

    @app.agent(results)
    async def collect(stream: Any) -> None:
        async for key, value in stream.items():
            try:
                result = result_codec.decode(value)
            except DecodeError as exc:
                log.warning("undecodable result for %r: %s", key, exc)
                continue
            order = result["order_number"]
            orders[order] = {"state": "done", "result": result}
            metrics.results.labels(result["status"], result.get("error_code") or "").inc()
            waiting.wake(order)

    waiting = OrderWaiters()
    metrics = StreamMetrics(router, lambda: len(orders), model_version)

    @app.page("/orders/{order_number}")
    @app.table_route(table=orders, match_info="order_number")
    async def get_order(web: Any, request: Any, order_number: str) -> Any:
        """Answered by the instance that holds the order's partition (others forward the
        request there); ``?wait=S`` holds a pending or unknown order until its result lands."""
        wait_s = parse_wait(request.query.get("wait"))
        entry = orders.get(order_number)
        if wait_s and (entry is None or entry["state"] != "done"):
            await waiting.wait(order_number, wait_s)
            entry = orders.get(order_number)
        if entry is None:
            return web.json({"order_number": order_number, "status": "UNKNOWN"}, status=404)
        if entry["state"] != "done":
            return web.json({"order_number": order_number, "status": "PENDING",
                             "image_sha256": entry.get("image_sha256")}, status=202)
        return web.json(entry["result"], status=200)

    def is_ready() -> bool:
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]  # TableManager's, not on its interface
        assigned = {tp.topic for tp in app.consumer.assignment()}
        ready = {submitted.get_topic_name(), results.get_topic_name()} <= assigned and not app.rebalancing \
            and recovery.completed.is_set() and not recovery.in_recovery \
            and (router is None or router.ready.is_set())
        return bool(ready)

    @app.page("/ready")
    async def get_ready(web: Any, request: Any) -> Any:
        """200 once the table is recovered and the router has its partitions and image index."""
        ready = is_ready()
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/readyz")
    async def get_readyz(web: Any, request: Any) -> Any:
        ready = is_ready()
        return web.json({"ok": ready, "detail": "tables recovered, partitions assigned" if ready else "recovering"},
                        status=200 if ready else 503)

    @app.page("/healthz")
    async def get_healthz(web: Any, request: Any) -> Any:
        """Alive while the router thread runs (it stops the process when it fails)."""
        ok = router is None or not router.stopped
        return web.json({"ok": ok, "detail": "serving" if ok else "router stopped"}, status=200 if ok else 503)

    @app.page("/metrics")
    async def get_metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/stats")
    async def get_stats(web: Any, request: Any) -> Any:
        routing = dict(router.stats) | {"recognised_images": len(router.recognised)} if router is not None else {}
        return web.json(routing | {"model_version": model_version, "time": time.time()})

    return app
