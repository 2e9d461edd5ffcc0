"""Who is calling: the API key (``Authorization: Bearer`` or ``X-API-Key``) and its rate."""
from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from http_api.intake import RequestRefused
from http_api.keys import KeyRing
from http_api.ratelimit import RateLimiter, retry_after_header


@dataclass(frozen=True)
class Caller:
    """``scope`` names the caller for rate limits and idempotency keys."""
    scope: str
    key_id: str | None


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return request.headers.get("x-api-key")


class Gate:
    def __init__(self, keys: KeyRing, limiter: RateLimiter, *, allow_anonymous: bool) -> None:
        self.keys, self.limiter, self.allow_anonymous = keys, limiter, allow_anonymous

    def admit(self, request: Request) -> Caller:
        presented = presented_key(request)
        rate = None
        if presented is None and self.allow_anonymous:
            caller = Caller(f"anonymous:{request.client.host if request.client else '-'}", None)
        else:
            verdict = self.keys.check(presented)
            if verdict.status == 401:
                raise RequestRefused(401, "UNAUTHORIZED", "a valid API key is needed: send "
                                     "'Authorization: Bearer bsk_...' (create one with `billstream api-keys create`)",
                                     {"WWW-Authenticate": "Bearer"})
            assert verdict.key is not None
            if verdict.status == 403:
                raise RequestRefused(403, "KEY_REVOKED", f"the API key {verdict.key.id} has been revoked")
            caller, rate = Caller(f"key:{verdict.key.id}", verdict.key.id), verdict.key.rate_per_s
        wait_s = self.limiter.take(caller.scope, rate)
        if wait_s > 0:
            raise RequestRefused(429, "RATE_LIMITED", f"too many requests; retry in {wait_s:.1f}s",
                                 {"Retry-After": retry_after_header(wait_s)})
        return caller
