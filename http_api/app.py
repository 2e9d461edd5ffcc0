"""The FastAPI application: routes, error bodies and the parts it is built from.

Every error leaves as ``{"code": ..., "message": ...}`` with its status; nothing a client
sends can make it answer 500. No state is kept here: bills go to MinIO and Kafka, results
are read from the stream app, idempotency keys live in MinIO.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import unquote

from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from billstream_core.errors import BillstreamError, ObjectNotFound
from billstream_core.kafka import make_admin
from billstream_core.order_numbers import is_valid_order_number, new_order_number
from billstream_core.settings import Settings
from billstream_core.storage import ObjectStore, sha256_hex
from http_api.access import Caller, Gate
from http_api.idempotency import Claim, IdempotencyStore, fingerprint
from http_api.intake import RequestRefused, UploadedBill, read_multipart, read_raw_bill
from http_api.keys import KeyFile, KeyRing, parse_env_keys
from http_api.metrics import ApiMetrics
from http_api.orders import OrderReader
from http_api.ratelimit import RateLimiter
from http_api.submission import AsyncSubmitter, BillToSubmit, failure_status

log = logging.getLogger("billstream.api")
STATIC = resources.files("http_api") / "static"

_BILL_BODY = {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "order_number": {"type": "string"}, "attr": {"type": "array", "items": {"type": "string"}}}}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
}, "required": True}
_ERROR = {"description": "an error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}


@dataclass
class Parts:
    """What the routes use; made in the lifespan so that a test can build its own."""
    settings: Settings
    store: ObjectStore
    submitter: AsyncSubmitter
    orders: OrderReader
    idempotency: IdempotencyStore
    gate: Gate
    admin: AdminClient


def build_parts(settings: Settings) -> Parts:
    api = settings.api
    store = ObjectStore(settings.storage)
    env_keys = parse_env_keys(api.keys.get_secret_value()) if api.keys is not None else []
    keys = KeyRing(KeyFile(api.keys_file) if api.keys_file else None, env_keys)
    return Parts(settings, store, AsyncSubmitter(settings, store),
                 OrderReader(api.stream_url_list or [settings.stream.url]),
                 IdempotencyStore(store, api.idempotency_hours),
                 Gate(keys, RateLimiter(api.rate_per_s, api.burst), allow_anonymous=api.allow_anonymous),
                 make_admin(settings.kafka))


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def create_app(settings: Settings) -> FastAPI:
    holder: dict[str, Parts] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = await asyncio.to_thread(build_parts, settings)
        holder["parts"] = parts
        try:
            yield
        finally:
            await parts.orders.close()
            await asyncio.to_thread(parts.submitter.close)

    app = FastAPI(title="billstream", version="1", lifespan=lifespan,
                  description="Submit bills (receipts, invoices) and read what was recognised on them.")
    metrics = ApiMetrics()

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "other")
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.seconds.labels(path).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def parts() -> Parts:
        return holder["parts"]

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        metrics.refusals.labels(exc.code).inc()
        headers = dict(exc.headers)
        if request.method == "POST":
            # the body may be unread: closing the connection stops the server reading (and
            # discarding) the rest of it, e.g. the remaining gigabytes of a refused upload
            headers["Connection"] = "close"
        return error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(BillstreamError)
    async def failed(request: Request, exc: BillstreamError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error(failure_status(exc), exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, "BAD_REQUEST", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        return error(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, "INTERNAL", "an unexpected error; the server log has the details")

    def location(request: Request, order: str) -> str:
        base = settings.api.public_url or str(request.base_url)
        return f"{base.rstrip('/')}/v1/bills/{order}"

    async def read_bills(request: Request) -> tuple[list[UploadedBill], dict[str, list[str]]]:
        content_type = request.headers.get("content-type", "")
        query = {name: request.query_params.getlist(name) for name in ("order_number", "attr")
                 if name in request.query_params}
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            form = await read_multipart(request.stream(), content_type, request.headers, settings.limits,
                                        settings.api)
            return form.bills, form.fields | query
        if not content_type:
            raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE", "say what the body is: Content-Type: image/jpeg, "
                                 "image/png, image/webp, image/tiff, application/pdf or multipart/form-data")
        filename = request.headers.get("x-filename")
        bill = await read_raw_bill(request.stream(), request.headers, settings.limits,
                                   unquote(filename)[:255] if filename else None)
        return [bill], query

    def bill_requests(bills: list[UploadedBill], fields: dict[str, list[str]]) -> tuple[list[str], dict[str, str]]:
        given = fields.get("order_number", [])
        if len(given) > 1 or (given and len(bills) > 1):
            raise RequestRefused(400, "BAD_REQUEST", "order_number is for a request with exactly one bill")
        if given and not is_valid_order_number(given[0]):
            raise RequestRefused(400, "INVALID_ORDER_NUMBER", f"invalid order number {given[0][:40]!r}: 1-128 "
                                 "letters, digits and . _ : / -, starting with a letter or digit")
        attributes = {}
        for pair in fields.get("attr", []):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise RequestRefused(400, "BAD_REQUEST", f"attr wants KEY=VALUE, got {pair[:40]!r}")
            attributes[key] = value
        return (given or [new_order_number() for _ in bills]), attributes

    @app.post("/v1/bills", status_code=202, tags=["bills"], summary="Submit one or more bills",
              openapi_extra={"requestBody": _BILL_BODY, "parameters": [
                  {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                   "description": "the same key within a day replays the first answer and submits nothing"},
                  {"name": "order_number", "in": "query", "required": False, "schema": {"type": "string"}},
                  {"name": "attr", "in": "query", "required": False,
                   "schema": {"type": "array", "items": {"type": "string"}}}]},
              responses={400: _ERROR, 401: _ERROR, 403: _ERROR, 409: _ERROR, 413: _ERROR, 415: _ERROR,
                         422: _ERROR, 429: _ERROR, 503: _ERROR})
    async def submit_bills(request: Request) -> JSONResponse:
        """The bill is the body (`image/jpeg`, `image/png`, `image/webp`, `image/tiff`, `application/pdf`),
        or one or more `file` parts of a multipart form. Answers once the events are durable in Kafka."""
        p = parts()
        caller = p.gate.admit(request)
        bills, fields = await read_bills(request)
        numbers, attributes = bill_requests(bills, fields)
        idem_key = request.headers.get("idempotency-key")
        claim: Claim | None = None
        print_ = fingerprint([sha256_hex(b.data) for b in bills] + fields.get("order_number", [])
                             + sorted(fields.get("attr", [])))
        if idem_key is not None:
            claim = await asyncio.to_thread(p.idempotency.claim, caller.scope, idem_key, print_, numbers)
            if claim.answer is not None:
                return _accepted(claim.answer, replayed=True)
            numbers = claim.order_numbers
        try:
            submissions = await asyncio.gather(*(p.submitter.submit(BillToSubmit(b.data, n, attributes, caller.scope))
                                                 for b, n in zip(bills, numbers)))
        except BillstreamError:
            if claim is not None and idem_key is not None:
                await asyncio.to_thread(p.idempotency.release, caller.scope, idem_key)
            raise
        answer = {"orders": [{"order_number": s.order_number, "filename": b.filename, "sha256": s.image.sha256,
                              "size_bytes": s.image.size_bytes, "content_type": s.image.content_type,
                              "location": location(request, s.order_number)}
                             for s, b in zip(submissions, bills)]}
        if claim is not None and idem_key is not None:
            await asyncio.to_thread(p.idempotency.complete, caller.scope, idem_key, print_, claim, answer)
        for submission in submissions:
            metrics.bills.labels(submission.image.content_type).inc()
            metrics.bytes.inc(submission.image.size_bytes)
        return _accepted(answer, replayed=False)

    def _accepted(answer: dict[str, Any], *, replayed: bool) -> JSONResponse:
        headers = {"Location": answer["orders"][0]["location"]}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(answer, status_code=202, headers=headers)

    def order_param(order: str) -> str:
        if not is_valid_order_number(order):
            raise RequestRefused(400, "INVALID_ORDER_NUMBER", f"invalid order number {order[:40]!r}")
        return order

    @app.get("/v1/bills/{order_number}", tags=["bills"], summary="A bill's result",
             responses={202: {"description": "still being recognised"}, 400: _ERROR, 401: _ERROR, 404: _ERROR,
                        429: _ERROR, 503: _ERROR})
    async def get_bill(request: Request, order_number: str, wait: float = 0.0) -> JSONResponse:
        """`200` with the BillResult, `202` while pending, `404` when unknown. `wait` (seconds, up to the
        server's limit) holds the request until the result lands."""
        p = parts()
        p.gate.admit(request)
        order = order_param(order_number)
        if not 0 <= wait < float("inf"):
            raise RequestRefused(400, "BAD_REQUEST", "wait is a number of seconds, 0 or more")
        state = await p.orders.read(order, min(wait, settings.api.max_wait_s))
        if state.status == 404:
            return error(404, "UNKNOWN_ORDER", f"no order {order} is known (yet: a just-accepted order is known "
                         "within moments)")
        if state.status == 202:
            return JSONResponse({"order_number": order, "status": "PENDING"}, status_code=202,
                                headers={"Retry-After": "1"})
        return JSONResponse(state.body)

    @app.get("/v1/bills/{order_number}/image", tags=["bills"], summary="The bill's stored image",
             response_class=Response, responses={400: _ERROR, 401: _ERROR, 404: _ERROR})
    async def get_image(request: Request, order_number: str) -> Response:
        p = parts()
        p.gate.admit(request)
        order = order_param(order_number)
        state = await p.orders.read(order)
        digest = state.body.get("image_sha256") if state.status in (200, 202) else None
        if not digest:
            return error(404, "NO_IMAGE", f"no stored image is known for order {order}")
        try:
            head = await asyncio.to_thread(p.store.head, digest)
        except ObjectNotFound:
            return error(404, "NO_IMAGE", f"the image of order {order} is no longer stored")
        return StreamingResponse(p.store.stream(digest), media_type=head.content_type,
                                 headers={"Content-Length": str(head.size_bytes),
                                          "Cache-Control": "private, max-age=86400"})

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Kafka and the object store answer",
             responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        p = parts()
        checks = await asyncio.gather(asyncio.to_thread(_kafka_answers, p.admin),
                                      asyncio.to_thread(_store_answers, p.store))
        body = {"kafka": checks[0], "object_store": checks[1]}
        return JSONResponse({"ready": all(checks)} | body, status_code=200 if all(checks) else 503)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _kafka_answers(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=2)
        return True
    except Exception:  # any failure is "not ready"; the reason is in the client's own log
        return False


def _store_answers(store: ObjectStore) -> bool:
    try:
        return store.bucket_exists()
    except BillstreamError:
        return False


__all__ = ["Caller", "create_app"]
