"""The fault cases. Each starts its own pipeline on fresh topics, drives the load, injects
its fault in the middle, heals it, drains, and returns one row."""
from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.faults.disk import small_disk
from bench.faults.harness import Pipeline, Row, Run, isolated, running
from bench.faults.network import Toxic, Toxiproxy
from bench.stacks import free_port
from billstream_core.kafka import ReliableProducer, make_admin, topic_end_offset
from billstream_core.order_numbers import new_order_number
from billstream_core.serde import codec
from billstream_core.settings import Settings
from infra.kafka_local import LocalKafka
from infra.stack import LocalStack
from producers.backfill import Ledger, backfill
from producers.samples import render_bill
from producers.submit import BillSubmitter

BURST = 40  # bills submitted at once just before storage goes away: some wait on their fetch


@dataclass
class Context:
    stack: LocalStack
    base: Settings
    log_dir: Path
    before_s: float = 20.0  # load before the fault
    fault_s: float = 20.0  # how long the fault lasts
    after_s: float = 20.0  # load after the heal
    rate: float = 3.0  # bills a second


def _pipeline(ctx: Context, case: str, *, workers: int = 2, stream_apps: int = 1,
              worker: dict[str, object] | None = None, worker_bootstrap: str | None = None
              ) -> tuple[Settings, Pipeline]:
    settings = isolated(ctx.base, worker=worker)  # type: ignore[arg-type]
    pipe = Pipeline(settings, ctx.log_dir / case)
    for n in range(stream_apps):
        pipe.stream_app(f"stream-{n + 1}", None if n == 0 else free_port())
    for n in range(workers):
        pipe.worker(f"worker-{n + 1}", worker_bootstrap)
    pipe.wait_ready()
    return settings, pipe


def leader_node(stack: LocalStack, settings: Settings, topic: str) -> LocalKafka:
    """The node that leads ``topic``'s partition 0."""
    metadata = make_admin(settings.kafka).list_topics(timeout=10)
    leader = metadata.topics[topic].partitions[0].leader
    port = metadata.brokers[leader].port
    return next(node for node in stack.kafka_nodes if node.port == port)


def _pid(node: LocalKafka) -> int:
    running = node.process.running()
    if running is None:
        raise RuntimeError(f"{node.name} is not running")
    return running.pid


# A fault: injects (calling run.fault()), lasts, heals (calling run.healed()); returns what
# to write in its row once the run has drained: (case label, notes).
Fault = Callable[[Run, Settings, Pipeline], Callable[[], tuple[str, str]]]


def _run_case(ctx: Context, name: str, fault: Fault, *, stream_apps: int = 1,
              worker: dict[str, object] | None = None, worker_bootstrap: str | None = None) -> Row:
    """The shape every case shares: its pipeline, load before, the fault, load after, drain."""
    settings, pipe = _pipeline(ctx, name, stream_apps=stream_apps, worker=worker, worker_bootstrap=worker_bootstrap)
    try:
        with running(settings, ctx.rate) as run:
            run.load_for(ctx.before_s)
            describe = fault(run, settings, pipe)
            run.load_for(ctx.after_s)
            run.drain()
            pipe.stop()  # before the notes: a process's last words (its final stats) are in its log
            return run.row(*describe())
    finally:
        pipe.stop()


def _broker_down(ctx: Context, sig: signal.Signals) -> Fault:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        node = leader_node(ctx.stack, settings, settings.topics.results)
        run.fault()
        os.kill(_pid(node), sig)
        if sig == signal.SIGKILL:
            run.load_for(ctx.fault_s)
            node.start()
            label, notes = "a broker killed (-9) and restarted", f"{node.name} led {settings.topics.results}[0]; " \
                f"down {ctx.fault_s:.0f}s"
        else:
            run.load_for(max(ctx.fault_s, 20.0))  # past the brokers' and the clients' session timeouts
            os.kill(_pid(node), signal.SIGCONT)
            label, notes = "a broker stalled (SIGSTOP past the session timeout)", node.name
        ctx.stack.wait_ready()
        run.healed()
        return lambda: (label, notes)
    return inject


def broker_killed(ctx: Context) -> Row:
    return _run_case(ctx, "broker-killed", _broker_down(ctx, signal.SIGKILL))


def broker_stalled(ctx: Context) -> Row:
    return _run_case(ctx, "broker-stalled", _broker_down(ctx, signal.SIGSTOP))


def brokers_rolled(ctx: Context) -> Row:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        run.fault()
        for node in ctx.stack.kafka_nodes:  # a clean stop (SIGTERM), then back, one at a time
            node.process.stop()
            node.start()
            ctx.stack.wait_ready()
            time.sleep(5)
        run.healed()
        return lambda: ("a rolling restart of every broker", f"{len(ctx.stack.kafka_nodes)} nodes, one at a time")
    return _run_case(ctx, "brokers-rolled", inject)


def _storage_down(ctx: Context, seconds: float) -> Callable[[Run], None]:
    def outage(run: Run) -> None:
        run.load.burst(BURST)  # orders whose images the workers have yet to fetch
        run.fault()
        ctx.stack.minio.process.stop()
        run.load_for(seconds)
        ctx.stack.minio.start()
        ctx.stack.wait_ready()
        run.healed()
    return outage


def storage_outage(ctx: Context) -> Row:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        _storage_down(ctx, ctx.fault_s)(run)

        def describe() -> tuple[str, str]:
            failed = sum(records[0][1]["status"] == "FAILED" for o, records in list(run.tally.arrivals.items())
                         if o in run.load.submitted)
            return ("object storage stopped",
                    f"MinIO down {ctx.fault_s:.0f}s just after a burst of {BURST}, within the workers' "
                    f"{settings.worker.storage_patience_s:.0f}s patience; "
                    + (f"{failed} FAILED" if failed else "every order RECOGNIZED"))
        return describe
    return _run_case(ctx, "storage-outage", inject)


def storage_outage_past_patience(ctx: Context) -> Row:
    patience = 8.0
    down = max(ctx.fault_s, 3 * patience)

    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        _storage_down(ctx, down)(run)

        def describe() -> tuple[str, str]:
            late = [records[0][1] for o, records in list(run.tally.arrivals.items())
                    if o in run.load.submitted and run.load.submitted[o] > run.healed_at + 2]
            codes = {r.get("error_code") for r in (v[0][1] for v in run.tally.arrivals.values()) if r["status"] == "FAILED"}
            return ("object storage stopped past the patience",
                    f"MinIO down {down:.0f}s just after a burst of {BURST}, patience {patience:.0f}s; FAILED codes "
                    f"{sorted(c or '' for c in codes)}; after the heal "
                    f"{sum(r['status'] == 'RECOGNIZED' for r in late)}/{len(late)} RECOGNIZED")
        return describe
    return _run_case(ctx, "storage-past-patience", inject, worker={"storage_patience_s": patience})


def zombie_worker(ctx: Context) -> Row:
    paused = max(ctx.fault_s, 20.0)  # past max.poll.interval.ms and the session timeout (10 s)

    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        zombie = pipe.procs["worker-1"]
        run.fault()
        os.kill(zombie.process.pid, signal.SIGSTOP)
        run.load_for(paused)
        os.kill(zombie.process.pid, signal.SIGCONT)
        run.healed()

        def describe() -> tuple[str, str]:  # after the pipeline was stopped: a clean stop shows in its log
            clean = any("stopped:" in line for line in zombie.log_path.read_text().splitlines())
            return ("a zombie worker (SIGSTOP past max.poll.interval.ms)",
                    f"worker-1 paused {paused:.0f}s; afterwards "
                    + ("it ran on until stopped at the end" if clean else "it exited (a supervisor restarts it)"))
        return describe
    return _run_case(ctx, "zombie-worker", inject, worker={"max_poll_interval_ms": 10_000})


def zombie_worker_mid_batch(ctx: Context) -> Row:
    """The zombie paused while it holds a batch: when it wakes, its transaction's offsets
    belong to a group generation that has moved on, so the commit must fail and abort."""
    paused = max(ctx.fault_s, 20.0)

    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        zombie = pipe.procs["worker-1"]
        run.load.burst(2 * BURST)  # both workers busy for several seconds
        time.sleep(1.0)
        run.fault()
        os.kill(zombie.process.pid, signal.SIGSTOP)
        run.load_for(paused)
        os.kill(zombie.process.pid, signal.SIGCONT)
        run.healed()

        def describe() -> tuple[str, str]:
            final = [line for line in zombie.log_path.read_text().splitlines() if "stopped:" in line]
            return ("a zombie worker paused in the middle of a batch",
                    f"worker-1 paused {paused:.0f}s after a burst of {2 * BURST}; its final stats: "
                    f"{final[-1].split('stopped: ', 1)[-1] if final else 'none (it did not stop cleanly)'}")
        return describe
    return _run_case(ctx, "zombie-worker-mid-batch", inject, worker={"max_poll_interval_ms": 10_000})


def stream_app_killed_in_rebalance(ctx: Context) -> Row:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        run.fault()
        pipe.stream_app("stream-3", free_port())  # joining: the routers' and Faust's groups rebalance
        time.sleep(2.0)
        pipe.procs["stream-2"].kill()  # killed while that rebalance runs
        run.load_for(ctx.fault_s)
        pipe.stream_app("stream-2", free_port())
        run.healed()
        return lambda: ("a stream app killed (-9) during a rebalance",
                        "a third stream app joined; 2 s later the second was killed, then restarted")
    return _run_case(ctx, "stream-app-killed-in-rebalance", inject, stream_apps=2)


def stream_app_killed(ctx: Context) -> Row:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        run.fault()
        pipe.procs["stream-2"].kill()
        run.load_for(ctx.fault_s)
        pipe.stream_app("stream-2", free_port())
        run.healed()
        return lambda: ("one of two stream apps killed (-9) and restarted", "")
    return _run_case(ctx, "stream-app-killed", inject, stream_apps=2)


# A slow, lossy link: each way 150 ± 50 ms, and a fifth of the connections reset 3 s after
# they open (a TCP proxy cannot drop packets; what loss does to a TCP stream, stalls and
# broken connections, it can).
SLOW_LINK = (Toxic("latency-down", "latency", {"latency": 150, "jitter": 50}),
             Toxic("latency-up", "latency", {"latency": 150, "jitter": 50}, stream="upstream"),
             Toxic("resets", "reset_peer", {"timeout": 3000}, toxicity=0.2))
CUT_S = 20.0


def _through_proxy(ctx: Context, name: str, fault: Callable[[Run, Toxiproxy], tuple[str, str]]) -> Row:
    """The workers reach the broker only through a proxy (the one-node stack's proxied
    listener); the stream apps, the load and the tally do not."""
    listener = ctx.stack.kafka.proxied
    if listener is None:
        raise RuntimeError("the network cases need the stack's proxied listener (scratch_stack(proxied=True))")
    toxiproxy = Toxiproxy(ctx.base.infra.cache_dir, ctx.log_dir / name)
    toxiproxy.start()
    try:
        toxiproxy.proxy("kafka", listen=listener.advertised, upstream=listener.port)

        def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
            described = fault(run, toxiproxy)
            return lambda: described
        return _run_case(ctx, name, inject, worker_bootstrap=f"127.0.0.1:{listener.advertised}")
    finally:
        toxiproxy.stop()


def network_slow(ctx: Context) -> Row:
    def fault(run: Run, toxiproxy: Toxiproxy) -> tuple[str, str]:
        run.fault()
        for toxic in SLOW_LINK:
            toxiproxy.add("kafka", toxic)
        run.load_for(ctx.fault_s)
        toxiproxy.clear("kafka")
        run.healed()
        return ("a slow, lossy network between the workers and the broker",
                f"{ctx.fault_s:.0f}s of 150±50 ms each way and 20% of connections reset 3 s after they open "
                "(Toxiproxy)")
    return _through_proxy(ctx, "network-slow", fault)


def network_cut(ctx: Context) -> Row:
    def fault(run: Run, toxiproxy: Toxiproxy) -> tuple[str, str]:
        run.fault()
        toxiproxy.enable("kafka", False)
        run.load_for(CUT_S)
        toxiproxy.enable("kafka", True)
        run.healed()
        return ("the network between the workers and the broker cut",
                f"every worker connection closed and refused for {CUT_S:.0f}s, then healed (Toxiproxy)")
    return _through_proxy(ctx, "network-cut", fault)


def storage_full(ctx: Context) -> Row:
    """MinIO on a small tmpfs, filled in the middle of the load: new images are refused with
    a clear error and nothing is announced for them; orders already accepted complete."""
    with small_disk(ctx.base) as disk, tempfile.TemporaryDirectory(prefix="faults-backfill-") as folder:
        def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
            run.load.burst(BURST)  # accepted, their images still to be fetched
            run.fault()
            disk.fill()
            events_before, refused_before = topic_end_offset(settings.kafka, settings.topics.submitted), len(run.load.refused)
            paths = []
            for n in range(6):
                path = Path(folder) / f"bill-{n}.png"
                path.write_bytes(render_bill([f"BACKFILL {uuid.uuid4().hex[:6]} {n}", f"TOTAL {n}.10"]))
                paths.append(path)
            report = backfill(BillSubmitter(settings, source="backfill"), paths, Ledger(Path(folder) / "ledger.jsonl"),
                              concurrency=2)
            run.load_for(ctx.fault_s)
            accepted = [o for o, at in list(run.load.submitted.items()) if at >= run.fault_at]
            announced = topic_end_offset(settings.kafka, settings.topics.submitted) - events_before
            refusals = run.load.refused[refused_before:]
            disk.free()
            run.healed()
            unclear = [r for r in refusals if "full" not in r]

            def describe() -> tuple[str, str]:
                late = [records[0][1]["status"] for o, records in list(run.tally.arrivals.items())
                        if o in run.load.submitted and run.load.submitted[o] <= run.fault_at + 1]
                return ("object storage full",
                        f"MinIO's {disk.size_mb} MB tmpfs filled {ctx.fault_s:.0f}s just after a burst of {BURST}: "
                        f"{len(refusals)} new images refused ({len(unclear)} without a clear error), "
                        f"{len(accepted)} repeats accepted (image already stored), {announced - len(accepted)} events "
                        f"announced for refused bills; backfill: {report.submitted} submitted, halted: "
                        f"{'yes' if report.halted else 'NO'}; orders accepted before: "
                        f"{late.count('RECOGNIZED')}/{len(late)} RECOGNIZED")
            return describe
        return _run_case(replace(ctx, base=disk.settings), "storage-full", inject)


def poison_events(ctx: Context) -> Row:
    def inject(run: Run, settings: Settings, pipe: Pipeline) -> Callable[[], tuple[str, str]]:
        run.fault()
        producer = ReliableProducer(settings.kafka)
        garbage, future, missing = new_order_number(), new_order_number(), new_order_number()
        producer.produce(settings.topics.submitted, b"\x00garbage, not avro", key=garbage)
        # a future version: the right magic, a fingerprint no schema here has
        producer.produce(settings.topics.submitted, b"\xc3\x01" + b"\xfe" * 8 + b"\x02\x04", key=future)
        event = {"schema_version": 2, "order_number": missing, "submitted_at_ms": int(time.time() * 1000),
                 "image": {"bucket": settings.storage.bucket, "key": "ab" * 32, "sha256": "ab" * 32,
                           "size_bytes": 10, "content_type": "image/png"},
                 "source": "faults", "attributes": {}, "submitted_by": "User:faults"}
        producer.produce(settings.topics.submitted, codec("BillSubmitted").encode(event), key=missing)
        producer.flush()
        run.load.expected.update({garbage: ("FAILED", "UNDECODABLE_EVENT"), future: ("FAILED", "UNDECODABLE_EVENT"),
                                  missing: ("FAILED", "OBJECT_NOT_FOUND")})
        run.healed()
        return lambda: ("poison and mismatched events", "garbage bytes, a future schema version, a missing object: "
                        "each got its FAILED code; no partition stalled")
    return _run_case(ctx, "poison-events", inject)


CASES: dict[str, tuple[Callable[[Context], Row], bool]] = {  # name → (case, needs the three-broker cluster)
    "broker-killed": (broker_killed, True),
    "brokers-rolled": (brokers_rolled, True),
    "broker-stalled": (broker_stalled, True),
    "storage-outage": (storage_outage, False),
    "storage-past-patience": (storage_outage_past_patience, False),
    "zombie-worker": (zombie_worker, False),
    "zombie-worker-mid-batch": (zombie_worker_mid_batch, False),
    "stream-app-killed": (stream_app_killed, False),
    "stream-app-killed-in-rebalance": (stream_app_killed_in_rebalance, False),
    "poison-events": (poison_events, False),
    "network-slow": (network_slow, False),
    "network-cut": (network_cut, False),
    "storage-full": (storage_full, False),
}
FAST = ("broker-killed", "storage-outage", "zombie-worker-mid-batch", "network-cut")  # the subset CI runs
