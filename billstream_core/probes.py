"""``/healthz``, ``/readyz`` and ``/metrics`` for a process that has no web server of its own
(the worker): a small threaded HTTP server beside the main loop, so a probe is answered even
while the loop waits on a long engine batch."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("billstream.probes")

# a probe answers (ok, why): why is shown to the operator who curls it
Probe = Callable[[], tuple[bool, str]]


class ProbeServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, *, alive: Probe, ready: Probe) -> None:
        """``port`` 0 takes a free one (several workers on one host); :attr:`port` says which."""
        routes: dict[str, Probe] = {"/healthz": alive, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in routes:
                    ok, why = routes[path]()
                    self._send(200 if ok else 503, json.dumps({"ok": ok, "detail": why}).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found: /healthz, /readyz or /metrics"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass  # probes every few seconds would drown the process's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="probes", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
