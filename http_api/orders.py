"""Reading orders from the stream app, the one place results are kept queryable.

Any stream app instance answers for any order (it forwards to the one holding the order's
partition); several URLs are tried in turn so that one instance down does not stop reads.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from billstream_core.errors import BillstreamError

STREAM_WAIT_CAP_S = 55.0  # under the stream app's own cap, so each held request ends on its side


class StreamAppUnavailable(BillstreamError):
    code = "STREAM_APP_UNAVAILABLE"


@dataclass(frozen=True)
class OrderState:
    status: int  # 200 done, 202 pending, 404 unknown
    body: dict[str, Any]


class OrderReader:
    def __init__(self, urls: list[str], client: httpx.AsyncClient | None = None) -> None:
        self.urls = urls
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=STREAM_WAIT_CAP_S + 10))

    async def close(self) -> None:
        await self._client.aclose()

    async def _ask(self, order: str, wait_s: float) -> OrderState:
        failures = []
        for url in self.urls:
            try:
                response = await self._client.get(f"{url}/orders/{order}", params={"wait": f"{wait_s:.3f}"})
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {exc.__class__.__name__}")
                continue
            if response.status_code in (200, 202, 404):
                return OrderState(response.status_code, response.json())
            failures.append(f"{url}: HTTP {response.status_code}")
        raise StreamAppUnavailable("no stream app answered (" + "; ".join(failures) + ")")

    async def read(self, order: str, wait_s: float = 0.0) -> OrderState:
        """The order's state; with ``wait_s``, held until it is done or the time is up."""
        deadline = time.monotonic() + wait_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            state = await self._ask(order, min(left, STREAM_WAIT_CAP_S))
            if state.status == 200 or deadline - time.monotonic() <= 0.05:
                return state
