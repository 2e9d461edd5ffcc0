"""`billstream stream-app` and `billstream get ORDER_NUMBER`."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

from billstream_core.errors import BillstreamError
from billstream_core.kafka import ensure_topics, make_admin, partition_count, wait_for_broker
from billstream_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stream = sub.add_parser("stream-app", help="run the stream app (routing, cache, orders table, HTTP view)")
    stream.add_argument("--instance-id", default=None,
                        help="stable id of this instance (its router's transactional id); default: the host name")
    stream.add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    stream.set_defaults(run=run_stream)
    get = sub.add_parser("get", help="one order's result from the stream app (exit 0 done, 3 pending, 4 unknown)")
    get.add_argument("order_number")
    get.add_argument("--json", action="store_true")
    get.set_defaults(run=run_get)


def expected_model_version(settings: Settings) -> str:
    """The version the workers of this deployment produce, from the same worker settings: the
    router caches and serves results of this version only. A GPU is looked for only where
    the settings leave it to the machine (device and backend auto)."""
    from models.manifest import model_version, read_manifest, worker_profile

    worker, manifest = settings.worker, read_manifest()
    cuda = False
    if worker.device == "auto" and worker.backend in ("auto", "torch"):
        # asked in a child process: importing torch here would hold ~400 MB in the stream
        # app for the rest of its life, for one boolean
        probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                               capture_output=True, text=True, timeout=120)
        cuda = probe.stdout.strip() == "True"
    return model_version(manifest, worker_profile(worker.backend, worker.device, worker.decoder, manifest,
                                                  cuda_available=cuda))


def run_stream(settings: Settings, args: argparse.Namespace) -> int:
    from billstream_core.logs import configure_logging
    from stream_app.app import build_app, faust_worker, internal_topics, log_level
    from stream_app.layout import check_partition_layout
    from stream_app.router import ImageRouter

    configure_logging(log_level(args.loglevel), settings.log.format)  # the router logs before Faust's worker starts
    wait_for_broker(settings.kafka)
    ensure_topics(settings.kafka, settings.topics.all() + internal_topics(settings),
                  replication_factor=settings.topics.replication_factor)
    check_partition_layout(settings, {name: partition_count(settings.kafka, name)
                                      for name in (settings.topics.submitted, settings.topics.results)})
    version = expected_model_version(settings)
    instance_id = args.instance_id or socket.gethostname()
    router = ImageRouter(settings, model_version=version, instance_id=instance_id)
    failure: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:  # stop the whole process: a supervisor restarts it
        failure.append(exc)
        os.kill(os.getpid(), signal.SIGTERM)

    routing = threading.Thread(target=router.run, kwargs={"on_fatal": on_fatal}, name="router", daemon=True)
    routing.start()
    # the table's RocksDB directory is this instance's on this Kafka cluster: a stack made
    # anew (new topics, same names) never finds a database from the one before
    cluster_id = make_admin(settings.kafka).list_topics(timeout=settings.kafka.request_timeout_s).cluster_id
    app = build_app(settings, model_version=version, router=router, instance_id=f"{instance_id}.{cluster_id}")
    worker = faust_worker(app, args.loglevel, settings.log.format)
    try:
        worker.execute_from_commandline()  # returns on SIGTERM/SIGINT after a clean stop
    finally:
        router.stop()
        routing.join(30)
    if failure:
        raise BillstreamError(f"the router stopped: {failure[0]}")
    return 0


def run_get(settings: Settings, args: argparse.Namespace) -> int:
    url = f"{settings.stream.url}/orders/{args.order_number}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError) as exc:
        raise BillstreamError(f"the stream app at {settings.stream.url} is not answering ({exc}); "
                              "start it with `billstream stream-app`") from exc
    if args.json:
        print(json.dumps(body))
    elif status == 200:
        from billstream_cli.formatting import format_result

        print(format_result(body, lines=50))
    else:
        print(f"{args.order_number}: {body.get('status', status)}")
    return {200: 0, 202: 3, 404: 4}.get(status, 1)
