"""``Idempotency-Key``: the same key within its lifetime replays the first answer.

The memory is in the object store, beside the images, so that every API instance shares it
and none keeps state. A key is claimed with a conditional create (only one request wins),
and the claim already holds the order numbers the request will use. If the instance that
claimed it dies half-way, a retry after ``STALE_CLAIM_S`` takes the claim over and submits
under the same order numbers, which the router answers at most once each.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from billstream_core.clock import now_ms
from billstream_core.errors import ObjectNotFound
from billstream_core.storage import ObjectStore
from http_api.intake import RequestRefused

PREFIX = "idempotency/"
STALE_CLAIM_S = 60.0
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """``answer`` is set when the request was already answered: replay it, submit nothing."""
    order_numbers: list[str]
    answer: dict[str, Any] | None = None


def fingerprint(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, store: ObjectStore, ttl_hours: float) -> None:
        self.store = store
        self.ttl_ms = int(ttl_hours * 3_600_000)

    @staticmethod
    def _object(scope: str, key: str) -> str:
        return PREFIX + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get(name, max_bytes=1_000_000))  # type: ignore[no-any-return]
        except ObjectNotFound:
            return None

    def claim(self, scope: str, key: str, request_fingerprint: str, order_numbers: list[str]) -> Claim:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise RequestRefused(400, "BAD_IDEMPOTENCY_KEY", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} "
                                 "printable characters")
        name = self._object(scope, key)
        for _ in range(3):
            record = {"state": "pending", "fingerprint": request_fingerprint, "created_at_ms": now_ms(),
                      "order_numbers": order_numbers}
            if self.store.put_named(name, json.dumps(record).encode(), only_if_absent=True):
                return Claim(order_numbers)
            existing = self._read(name)
            if existing is None:
                continue  # removed between the two calls: try to create it again
            age_ms = now_ms() - int(existing["created_at_ms"])
            if age_ms > self.ttl_ms:
                self.store.remove(name)
                continue
            if existing["fingerprint"] != request_fingerprint:
                raise RequestRefused(422, "IDEMPOTENCY_KEY_REUSED",
                                     "this Idempotency-Key was used for a different request")
            if existing["state"] == "done":
                return Claim(existing["order_numbers"], existing["answer"])
            if age_ms < STALE_CLAIM_S * 1000:
                raise RequestRefused(409, "IDEMPOTENCY_KEY_IN_USE",
                                     "a request with this Idempotency-Key is still being handled; retry shortly",
                                     {"Retry-After": "1"})
            taken = dict(existing, created_at_ms=now_ms())
            self.store.put_named(name, json.dumps(taken).encode())
            return Claim(list(existing["order_numbers"]))
        raise RequestRefused(409, "IDEMPOTENCY_KEY_IN_USE", "the Idempotency-Key is contended; retry shortly",
                             {"Retry-After": "1"})

    def complete(self, scope: str, key: str, request_fingerprint: str, claim: Claim, answer: dict[str, Any]) -> None:
        record = {"state": "done", "fingerprint": request_fingerprint, "created_at_ms": now_ms(),
                  "order_numbers": claim.order_numbers, "answer": answer}
        self.store.put_named(self._object(scope, key), json.dumps(record).encode())

    def release(self, scope: str, key: str) -> None:
        """Forget a claim whose request failed before anything was published."""
        try:
            self.store.remove(self._object(scope, key))
        except ObjectNotFound:
            pass
