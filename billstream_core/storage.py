"""Content-addressed object storage on MinIO (S3 API).

Images are stored once under the hex sha256 of their bytes, so a re-upload of the same
bytes is a no-op and the key alone proves the content. MinIO/urllib3 errors are wrapped:
a missing key is :class:`ObjectNotFound`; a server that cannot be reached after the
bounded retries is :class:`StorageUnavailable`.
"""
from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from billstream_core.errors import (
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageFull,
    StorageUnavailable,
)
from billstream_core.settings import StorageSettings

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
# MinIO past its minimum free drive space (HTTP 507), and the generic S3 name for the same
_FULL_CODES = {"XMinioStorageFull", "InsufficientStorage"}
T = TypeVar("T")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(digest: str) -> str:
    """The object key for content with this sha256 (lower-case hex, 64 chars)."""
    if not _SHA256_HEX.match(digest):
        raise StorageError(f"not a sha256 hex digest: {digest[:80]!r}")
    return digest


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    sha256: str
    size_bytes: int
    content_type: str


class ObjectStore:
    def __init__(self, settings: StorageSettings, client: Minio | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._sleep = sleep
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s),
            retries=urllib3.Retry(total=0),
            maxsize=32,
        )
        self._client = client or Minio(
            settings.endpoint,
            access_key=settings.access_key.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"ObjectStore(endpoint={self.settings.endpoint!r}, bucket={self.bucket!r})"

    def _call(self, what: str, key: str | None, action: Callable[[], T]) -> T:
        """Run one S3 call with bounded retries on transport errors and 5xx answers."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    raise ObjectNotFound(f"{self.bucket}/{key or ''}: {exc.code}") from exc
                if exc.code in _FULL_CODES:
                    raise StorageFull(f"{what} {self.bucket}/{key or ''} refused: the object store is full "
                                      f"({exc.code}); free space or add capacity, then submit again") from exc
                if exc.code == "AccessDenied":
                    raise StorageAccessDenied(f"{what} {self.bucket}/{key or ''} refused: AccessDenied "
                                              "(the storage credential lacks this permission)") from exc
                if exc.response is not None and exc.response.status >= 500 and attempt < attempts:
                    self._sleep(0.2 * 2 ** (attempt - 1))
                    continue
                raise StorageError(f"{what} {self.bucket}/{key or ''} failed: {exc.code}") from exc
            except (urllib3.exceptions.HTTPError, OSError, MinioException) as exc:
                if attempt < attempts:
                    self._sleep(0.2 * 2 ** (attempt - 1))
                    continue
                raise StorageUnavailable(
                    f"MinIO at {self.settings.endpoint} unavailable after {attempts} attempts "
                    f"({what}): {exc.__class__.__name__}"
                ) from exc
        raise AssertionError("unreachable")

    def ensure_bucket(self) -> bool:
        """Create the bucket if missing; returns True when it was created."""
        if self._call("bucket_exists", None, lambda: self._client.bucket_exists(self.bucket)):
            return False
        try:
            self._call("make_bucket", None, lambda: self._client.make_bucket(self.bucket))
        except StorageError as exc:
            if "BucketAlreadyOwnedByYou" in str(exc) or "BucketAlreadyExists" in str(exc):
                return False
            raise
        return True

    def bucket_exists(self) -> bool:
        """One request that proves the server answers (a readiness check)."""
        return self._call("bucket_exists", None, lambda: self._client.bucket_exists(self.bucket))

    def head(self, key: str) -> StoredObject:
        stat = self._call("stat", key, lambda: self._client.stat_object(self.bucket, key))
        return StoredObject(self.bucket, key, key, int(stat.size or 0),
                            stat.content_type or "application/octet-stream")

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> StoredObject:
        """Store bytes under their sha256; a second put of the same bytes uploads nothing."""
        key = content_key(sha256_hex(data))
        stored = StoredObject(self.bucket, key, key, len(data), content_type)
        try:
            if self.exists(key):
                return stored
        except StorageAccessDenied:
            pass  # a put-only credential cannot look first; the same bytes stored again change nothing
        self._call("put", key, lambda: self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type))
        return stored

    def put_named(self, key: str, data: bytes, content_type: str = "application/json", *,
                  only_if_absent: bool = False) -> bool:
        """Store bytes under a chosen key (not content-addressed: small records beside the
        images). ``only_if_absent`` makes it a conditional create (``If-None-Match: *``, sent
        on a presigned URL since the client has no option for it); returns False when an
        object was already there."""
        if not only_if_absent:
            self._call("put", key, lambda: self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type))
            return True

        def create() -> bool:
            url = self._client.presigned_put_object(self.bucket, key, expires=timedelta(minutes=5))
            response = self._http.request("PUT", url, body=data, headers={
                "If-None-Match": "*", "Content-Type": content_type}, retries=False)
            if response.status == 412:
                return False
            if response.status >= 500:
                raise urllib3.exceptions.HTTPError(f"HTTP {response.status}")
            if response.status >= 300:
                raise StorageError(f"conditional put {self.bucket}/{key} failed: HTTP {response.status}")
            return True

        return self._call("create", key, create)

    def remove(self, key: str) -> None:
        self._call("remove", key, lambda: self._client.remove_object(self.bucket, key))

    def stream(self, key: str, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
        """An object's bytes in chunks, for answering a download without holding it whole."""
        response = self._call("get", key, lambda: self._client.get_object(self.bucket, key))
        try:
            yield from response.stream(chunk_bytes)
        finally:
            response.close()
            response.release_conn()

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """Read an object whole; refuses objects over ``max_bytes`` by the response's
        Content-Length, before reading the body (one request, not a HEAD and then a GET)."""
        def too_large(size: int) -> StorageError:  # not a transport error: _call lets it through, unretried
            return StorageError(f"{self.bucket}/{key} is {size} bytes, over the {max_bytes} limit", code="IMAGE_TOO_LARGE")

        def read() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                if max_bytes is None:
                    return response.read()
                size = int(response.headers.get("Content-Length") or -1)
                if size > max_bytes:
                    raise too_large(size)
                data = response.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise too_large(len(data))
                return data
            finally:
                response.close()
                response.release_conn()

        return self._call("get", key, read)
