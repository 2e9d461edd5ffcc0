"""Per-key token buckets. They live in each API process: with N instances behind a
balancer a key gets up to N times its rate, which the deployment accounts for."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_s: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it may. A key with a rate
        of its own may burst one second's worth of it (at least one request)."""
        rate = rate_per_s or self.rate_per_s
        burst = max(1, round(rate_per_s)) if rate_per_s else max(self.burst, 1)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
