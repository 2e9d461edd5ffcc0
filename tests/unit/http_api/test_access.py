"""Keys stored hashed, revocation seen on the next request, per-key token buckets, long polls."""
from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from http_api.keys import KeyFile, KeyRing, parse_env_keys
from http_api.ratelimit import RateLimiter
from stream_app.waiters import OrderWaiters, parse_wait


def test_a_key_is_stored_only_as_a_hash_and_checked_against_it(tmp_path: Path) -> None:
    file = KeyFile(tmp_path / "keys.json")
    key, secret = file.create("billing system")
    text = file.path.read_text()
    assert secret not in text and secret.rsplit("_", 1)[1] not in text and key.sha256 in text
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    ring = KeyRing(file, [])
    assert ring.check(secret).status == 200 and ring.check(secret).key == key
    assert ring.check(secret[:-1] + ("A" if secret[-1] != "A" else "B")).status == 401
    assert ring.check(None).status == 401 and ring.check("Basic abc").status == 401


def test_a_revoked_key_is_refused_from_the_next_check(tmp_path: Path) -> None:
    file = KeyFile(tmp_path / "keys.json")
    key, secret = file.create("app")
    ring = KeyRing(file, [])
    assert ring.check(secret).status == 200
    file.revoke(key.id)
    assert ring.check(secret).status == 403
    assert [k.revoked for k in file.load()] == [True]
    assert json.loads(file.path.read_text())["keys"][0]["revoked_at_ms"] > 0


def test_keys_from_the_environment_join_the_file(tmp_path: Path) -> None:
    file = KeyFile(tmp_path / "keys.json")
    _, secret = file.create("temp")
    key_id = secret.split("_")[1]
    digest = json.loads(file.path.read_text())["keys"][0]["sha256"]
    (tmp_path / "keys.json").unlink()
    ring = KeyRing(None, parse_env_keys(f"{key_id}:{digest}:2.5"))
    verdict = ring.check(secret)
    assert verdict.status == 200 and verdict.key is not None and verdict.key.rate_per_s == 2.5


def test_a_token_bucket_refuses_past_its_burst_and_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == 0.5
    assert limiter.take("other") == 0.0  # buckets are per key
    now[0] = 0.5
    assert limiter.take("k") == 0.0
    assert [limiter.take("slow", rate_per_s=1.0) for _ in range(2)] == [0.0, 1.0]  # its own rate: burst of 1


def test_a_held_request_wakes_on_the_result_or_times_out() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        waiters = OrderWaiters()
        woken = asyncio.create_task(waiters.wait("A", 5))
        await asyncio.sleep(0)
        waiters.wake("A")
        timed_out = await waiters.wait("B", 0.01)
        return await woken, timed_out, len(waiters)

    assert asyncio.run(scenario()) == (True, False, 0)
    assert [parse_wait(v) for v in (None, "", "2.5", "-1", "nan", "x", "1e9")] == [0, 0, 2.5, 0, 0, 0, 60.0]
