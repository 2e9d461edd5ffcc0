import hashlib

import pytest

from billstream_core.errors import ObjectNotFound, StorageError, StorageUnavailable
from billstream_core.media import sniff_content_type
from billstream_core.settings import StorageSettings
from billstream_core.storage import ObjectStore, content_key, sha256_hex


def test_key_is_the_sha256_of_the_content() -> None:
    data = b"receipt bytes"
    assert content_key(sha256_hex(data)) == hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) != sha256_hex(data + b"!")


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, "a" * 63, "../" + "a" * 61, "A" * 64])
def test_keys_that_are_not_sha256_hex_are_refused(bad: str) -> None:
    with pytest.raises(StorageError):
        content_key(bad)


@pytest.mark.parametrize(("head", "media_type"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
    (b"%PDF-1.7", "application/pdf"),
    (b"hello world", "application/octet-stream"),
])
def test_content_type_comes_from_magic_bytes(head: bytes, media_type: str) -> None:
    assert sniff_content_type(head) == media_type


def test_unreachable_server_is_storage_unavailable_after_bounded_retries() -> None:
    sleeps: list[float] = []
    settings = StorageSettings(endpoint="127.0.0.1:1", max_attempts=3, connect_timeout_s=0.5)
    store = ObjectStore(settings, sleep=sleeps.append)
    with pytest.raises(StorageUnavailable, match="after 3 attempts"):
        store.get("a" * 64)
    assert len(sleeps) == 2  # three attempts, two back-offs
    assert not isinstance(StorageUnavailable("x"), ObjectNotFound)
