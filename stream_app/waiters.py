"""Requests held open until an order's result lands (long polling, one event loop)."""
from __future__ import annotations

import asyncio
import contextlib
import math
from collections import defaultdict

MAX_WAIT_S = 60.0


def parse_wait(raw: str | None) -> float:
    """``?wait=`` as seconds, clamped to [0, MAX_WAIT_S]; anything unreadable is no wait."""
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        return 0.0
    return min(max(value, 0.0), MAX_WAIT_S) if math.isfinite(value) else 0.0


class OrderWaiters:
    def __init__(self) -> None:
        self._waiting: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)

    async def wait(self, order: str, timeout_s: float) -> bool:
        """True when woken by the order's result, False on the timeout."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[order].append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            futures = self._waiting.get(order)
            if futures is not None:
                with contextlib.suppress(ValueError):
                    futures.remove(future)
                if not futures:
                    del self._waiting[order]

    def wake(self, order: str) -> None:
        for future in self._waiting.pop(order, []):
            if not future.done():
                future.set_result(None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._waiting.values())
