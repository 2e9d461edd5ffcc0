"""`billstream worker`: one inference worker; several processes form one consumer group."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from billstream_core.kafka import wait_for_broker
from billstream_core.probes import ProbeServer
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("worker", help="run one inference worker (SIGTERM/Ctrl-C stops it cleanly)")
    parser.add_argument("--instance-id", default=None,
                        help="stable id (the transactional id); default: the lowest "
                             "free slot of this host, <host>-w<N>, which a restart after a crash takes again")
    parser.add_argument("--input-topic", default=None, help="default: the work topic (BILLSTREAM_WORKER__INPUT_TOPIC)")
    parser.add_argument("--json", action="store_true", help="print the final stats as JSON")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from inference_worker.handler import BillHandler
    from inference_worker.identity import claim_slot, explicit_slot
    from inference_worker.loop import InferenceWorker
    from models.engine.predictor import OcrEngine, serving_options

    if args.input_topic:
        settings = settings.model_copy(update={"worker": settings.worker.model_copy(update={"input_topic": args.input_topic})})
    wait_for_broker(settings.kafka)
    worker_settings = settings.worker
    if worker_settings.nice:
        os.nice(worker_settings.nice)  # before the engine starts its threads: they inherit it
    options = serving_options(worker_settings.backend, worker_settings.device, worker_settings.threads,
                              worker_settings.decoder, worker_settings.cpu_slot, worker_settings.memory_arena)
    engine = OcrEngine.load(options=options)
    handler = BillHandler(engine, ObjectStore(settings.storage), settings.limits,
                          fetch_concurrency=settings.worker.fetch_concurrency,
                          storage_patience_s=settings.worker.storage_patience_s)
    slot = explicit_slot(args.instance_id) if args.instance_id else claim_slot()
    instance_id = slot.instance_id
    worker = InferenceWorker(settings, handler, instance_id=instance_id)
    probes = ProbeServer(worker_settings.probe_host, worker_settings.probe_port, worker.metrics.registry,
                         alive=worker.alive, ready=worker.ready).start()
    worker.metrics.describe_model(engine.name, engine.version, backend=options.backend, device=options.device)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    cpu_slot = f", CPU slot {options.cpu_slot}" if options.cpu_slot else ""
    print(f"worker {instance_id}: model {engine.name} {engine.version} ({options.backend} on {options.device}, "
          f"{options.decoder} decoder{cpu_slot}), reading {worker.input_topic}; probes and metrics at {probes.url}", file=sys.stderr, flush=True)
    try:
        stats = worker.run()
    finally:
        probes.stop()
    summary = vars(stats) | {"instance_id": instance_id}
    print(json.dumps(summary) if args.json else f"worker {instance_id} stopped: {summary}", file=sys.stderr if not args.json else sys.stdout)
    return 0
