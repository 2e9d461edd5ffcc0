"""Wall-clock milliseconds since the epoch: the unit of every ``*_at_ms`` field."""
from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
