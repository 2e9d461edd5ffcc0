"""API keys: shown once at creation, stored only as a sha256 of their secret part.

A key reads ``bsk_<id>_<secret>``. The id is public (it names the key in lists, logs and
rate limits); the secret is 32 random bytes, so a plain sha256 is enough to store it: there
is nothing to brute-force the way there is with a password.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from billstream_core.clock import now_ms
from billstream_core.errors import BillstreamError

PREFIX = "bsk_"


class KeyFileError(BillstreamError):
    code = "BAD_KEY_FILE"


@dataclass(frozen=True)
class ApiKey:
    id: str
    sha256: str
    name: str = ""
    created_at_ms: int = 0
    revoked_at_ms: int | None = None
    rate_per_s: float | None = None  # None: the service's default

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None

    def __repr__(self) -> str:  # the hash is not a secret, but it has no business in logs either
        return f"ApiKey(id={self.id!r}, name={self.name!r}, revoked={self.revoked})"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX):].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def parse_env_keys(value: str) -> list[ApiKey]:
    """``ID:SHA256[:RATE]`` entries, comma-separated (for a Secret mounted as a variable)."""
    found = []
    for entry in filter(None, (e.strip() for e in value.split(","))):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or len(parts[1]) != 64:
            raise KeyFileError("BILLSTREAM_API__KEYS entries read ID:SHA256[:RATE]")
        found.append(ApiKey(parts[0], parts[1].lower(), name="env",
                            rate_per_s=float(parts[2]) if len(parts) == 3 else None))
    return found


class KeyFile:
    """The keys file: a JSON document rewritten whole (atomically, mode 0600) on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[ApiKey]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read the API keys file {self.path}: {exc}") from exc
        try:
            return [ApiKey(**entry) for entry in document["keys"]]
        except (KeyError, TypeError) as exc:
            raise KeyFileError(f"{self.path} is not an API keys file") from exc

    def _save(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": [asdict(k) for k in keys]}, out, indent=1)
        os.replace(staging, self.path)

    def create(self, name: str, *, rate_per_s: float | None = None) -> tuple[ApiKey, str]:
        """A new key; returns it and the full key string, which is never stored."""
        keys = self.load()
        key_id = secrets.token_hex(4)
        while any(k.id == key_id for k in keys):
            key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, _hash(secret), name=name, created_at_ms=now_ms(), rate_per_s=rate_per_s)
        self._save([*keys, key])
        return key, f"{PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> ApiKey:
        keys = self.load()
        for n, key in enumerate(keys):
            if key.id == key_id:
                if not key.revoked:
                    keys[n] = replace(key, revoked_at_ms=now_ms())
                    self._save(keys)
                return keys[n]
        raise KeyFileError(f"no API key with id {key_id!r} in {self.path}")


@dataclass(frozen=True)
class Verdict:
    key: ApiKey | None
    status: int  # 200 ok, 401 missing or unknown, 403 revoked


class KeyRing:
    """The keys a running service accepts. The file is re-read when it changes, so a key
    revoked with ``billstream api-keys revoke`` is refused from the next request on."""

    def __init__(self, file: KeyFile | None, env_keys: list[ApiKey]) -> None:
        self._file = file
        self._env = {k.id: k for k in env_keys}
        self._seen: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = dict(self._env)
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        if self._file is None:
            return
        try:
            stat = self._file.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = (0, 0)
        if seen == self._seen:
            return
        with self._lock:
            self._keys = {k.id: k for k in self._file.load()} | self._env
            self._seen = seen

    def check(self, presented: str | None) -> Verdict:
        if not presented:
            return Verdict(None, 401)
        parts = split_key(presented.strip())
        if parts is None:
            return Verdict(None, 401)
        self._refresh()
        key = self._keys.get(parts[0])
        if key is None or not hmac.compare_digest(key.sha256, _hash(parts[1])):
            return Verdict(None, 401)
        return Verdict(key, 403 if key.revoked else 200)
