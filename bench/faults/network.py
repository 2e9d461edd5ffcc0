"""A TCP proxy on loopback between the workers and the brokers: Toxiproxy (built with
``go install`` at a pinned version), driven through its HTTP API. The kernel's netem is not
available on every machine; a user-space proxy needs no privilege and touches only the
connections routed through it.
"""
from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stacks import free_port
from infra.processes import ManagedProcess
from infra.stack import wait_until
from infra.toolchain import toxiproxy_binary


@dataclass(frozen=True)
class Toxic:
    """One of Toxiproxy's toxics on one direction of a proxy (``downstream``: towards the client)."""
    name: str
    type: str
    attributes: dict[str, int]
    stream: str = "downstream"
    toxicity: float = 1.0


class Toxiproxy:
    def __init__(self, cache_dir: Path, state_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.api_port = free_port()
        self.process = ManagedProcess("toxiproxy", state_dir)

    def start(self, timeout_s: float = 20.0) -> None:
        binary = toxiproxy_binary(self.cache_dir)
        self.process.start([str(binary), "-host", "127.0.0.1", "-port", str(self.api_port)])
        wait_until(self._answers, "Toxiproxy", self.process, time.monotonic() + timeout_s, timeout_s)

    def _answers(self) -> bool:
        try:
            self._call("GET", "/version")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop()

    def proxy(self, name: str, listen: int, upstream: int) -> None:
        """Connections to 127.0.0.1:``listen`` reach 127.0.0.1:``upstream``."""
        self._call("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{listen}",
                                        "upstream": f"127.0.0.1:{upstream}", "enabled": True})

    def add(self, proxy: str, toxic: Toxic) -> None:
        self._call("POST", f"/proxies/{proxy}/toxics", {
            "name": toxic.name, "type": toxic.type, "stream": toxic.stream, "toxicity": toxic.toxicity,
            "attributes": toxic.attributes})

    def clear(self, proxy: str) -> None:
        """Remove every toxic of ``proxy``."""
        for toxic in self._call("GET", f"/proxies/{proxy}/toxics"):
            self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic['name']}")

    def enable(self, proxy: str, enabled: bool) -> None:
        """Disabled, the proxy closes every connection through it and refuses new ones: a cut."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None
