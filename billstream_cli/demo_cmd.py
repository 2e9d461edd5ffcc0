"""`billstream demo`: the whole system on one machine, with results printed as they arrive.

Brings up Kafka + MinIO (unless running), the stream app, two workers and the HTTP API
(anonymous access on: it is the local demo), submits sample bills (one of them over HTTP,
plus one repeat, answered from cache, and one broken file, answered FAILED), prints each
result, then a summary. Ctrl-C, or the end, stops everything the demo started; with
``--keep`` the web page stays up for the user's own bills.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.request

from billstream_cli.formatting import format_result
from billstream_core.media import sniff_content_type
from billstream_core.results_reader import ResultsReader
from billstream_core.settings import Settings
from infra.components import ComponentProcesses, wait_ready
from infra.stack import LocalStack, free_port


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("demo", help="local demo: stack, stream app, two workers, sample bills, results")
    parser.add_argument("--bills", type=int, default=8, help="how many sample bills to submit")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all results")
    parser.add_argument("--keep", action="store_true", help="leave the stack, stream app and workers running")
    parser.add_argument("--json", action="store_true", help="print results and the summary as JSON lines")
    parser.set_defaults(run=run)


def _say(message: str, as_json: bool) -> None:
    print(message if not as_json else json.dumps({"event": message}), file=sys.stderr if as_json else sys.stdout,
          flush=True)


def _post_bill(api_url: str, image: bytes) -> str:
    """Submit through the front door, as an HTTP client would; its order number."""
    request = urllib.request.Request(f"{api_url}/v1/bills", data=image, method="POST",
                                     headers={"Content-Type": sniff_content_type(image)})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["orders"][0]["order_number"])


# the series the demo shows of each process's /metrics (all of them are served)
DIGEST = ("billstream_worker_bills_total", "billstream_worker_engine_batch_pages_count",
          "billstream_worker_engine_batch_seconds_sum", "billstream_worker_transactions_total",
          "billstream_consumer_lag", "billstream_cache_answers_total", "billstream_single_flight_waits_total",
          "billstream_router_routed_total", "billstream_state_entries", "billstream_stream_results_total",
          "billstream_api_bills_accepted_total", "billstream_api_requests_total", "billstream_model_info",
          "process_resident_memory_bytes")


def metrics_digest(url: str) -> list[str]:
    """The DIGEST series of ``url``/metrics, one ``name{labels} value`` line each."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as exc:
        return [f"(not answering: {exc})"]
    lines = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in DIGEST and (sample.value or sample.name == "billstream_consumer_lag"):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                lines.append(f"{sample.name}{{{labels}}} {sample.value:g}" if labels else f"{sample.name} {sample.value:g}")
    return lines


def run(settings: Settings, args: argparse.Namespace) -> int:
    from producers.samples import sample_bills
    from producers.submit import BillSubmitter

    logging.getLogger("billstream.audit").setLevel(logging.WARNING)  # the demo prints its own account
    page = f"http://{settings.api.host}:{settings.api.port}"
    stack = LocalStack(settings)
    was_running = all(s.running for s in stack.status())
    stack.up()
    children = ComponentProcesses(settings.infra.resolved_state_dir / "logs" / "demo")
    interrupted = False
    try:
        _say(f"starting the stream app and {args.workers} workers (logs: {children.log_dir})", args.json)
        children.start("stream-app", "stream-app")
        metrics = {"stream app": settings.stream.url}
        for n in range(args.workers):  # each takes its own slot of this host, and a port for its probes
            port = free_port()
            children.start(f"worker-{n + 1}", "worker", env={"BILLSTREAM_WORKER__PROBE_PORT": str(port)})
            metrics[f"worker-{n + 1}"] = f"http://127.0.0.1:{port}"
        children.start("api", "api", env={"BILLSTREAM_API__ALLOW_ANONYMOUS": "true"})
        metrics["api"] = page
        wait_ready(settings.stream.url, children, 120)
        wait_ready(page, children, 60, path="/readyz", what="the HTTP API")
        _say(f"web page and API: {page}/  (API docs: {page}/docs)", args.json)

        results = ResultsReader(settings.kafka, settings.topics.results, start="end", group_prefix="billstream-demo")

        submitter = BillSubmitter(settings, source="demo")
        run_tag = int(time.time()) % 100000
        images = sample_bills(args.bills, run=run_tag)
        orders: dict[str, str] = {}
        started = time.monotonic()
        for n, image in enumerate(images[:-1]):
            orders[submitter.submit(image, flush=False).order_number] = f"sample bill {n + 1}"
        orders[_post_bill(page, images[-1])] = f"sample bill {len(images)}, over HTTP"
        orders[submitter.submit(images[0], flush=False).order_number] = "repeat of sample bill 1"
        broken = f"run {run_tag}: a text file, not a bill".encode()
        orders[submitter.submit(broken, flush=False).order_number] = "broken file"
        submitter.flush()
        _say(f"submitted {len(orders)} orders: {args.bills} sample bills (1 through the HTTP API), 1 repeat, "
             "1 broken file", args.json)

        seen: dict[str, list[dict]] = {}
        deadline = time.monotonic() + args.timeout
        while len(seen) < len(orders) and time.monotonic() < deadline:
            children.check()
            result = results.poll(0.5)
            if result is None or result.record is None or result.order_number not in orders:
                continue
            record = result.record
            seen.setdefault(record["order_number"], []).append(record)
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(f"{format_result(record)}   [{orders[record['order_number']]}]", flush=True)
        results.close()
        elapsed = time.monotonic() - started
        summary = {
            "submitted": len(orders), "results": sum(len(v) for v in seen.values()), "lost": len(set(orders) - set(seen)),
            "duplicates": sum(len(v) - 1 for v in seen.values()),
            "recognized": sum(v[0]["status"] == "RECOGNIZED" for v in seen.values()),
            "failed": sum(v[0]["status"] == "FAILED" for v in seen.values()),
            "cached": sum(v[0]["cached"] for v in seen.values()), "seconds": round(elapsed, 2),
        }
        if args.json:
            print(json.dumps({"summary": summary}))
        else:
            print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        for name, url in metrics.items():  # what an operator's Prometheus would scrape now
            digest = metrics_digest(url)
            if args.json:
                print(json.dumps({"metrics": name, "url": f"{url}/metrics", "samples": digest}))
            else:
                print(f"metrics of {name} (curl {url}/metrics):")
                print("\n".join(f"  {line}" for line in digest))
        ok = summary["lost"] == 0 and summary["duplicates"] == 0
        return 0 if ok else 1
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if args.keep:
            _say(f"left running (logs in {children.log_dir}): open {page}/ to upload your own bills", args.json)
        else:
            children.stop()
            if not was_running:
                stack.down()
            _say("stopped everything the demo started" + (" (interrupted)" if interrupted else ""), args.json)
