"""Put/get/head against the session's real MinIO server."""
import pytest

from billstream_core.errors import ObjectNotFound, StorageError
from billstream_core.storage import ObjectStore, sha256_hex


def test_put_get_head_by_content_hash(store: ObjectStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"integration-test-" + bytes(range(256))
    stored = store.put(data, "image/png")
    assert stored.key == sha256_hex(data) and stored.size_bytes == len(data)
    assert store.get(stored.key) == data
    head = store.head(stored.key)
    assert (head.size_bytes, head.content_type) == (len(data), "image/png")


def test_second_put_of_same_bytes_is_idempotent(store: ObjectStore) -> None:
    data = b"same bytes twice " * 10
    first, second = store.put(data), store.put(data)
    assert first == second
    assert store.get(first.key) == data


def test_missing_object_is_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("0" * 64)
    with pytest.raises(ObjectNotFound):
        store.head("0" * 64)
    assert not store.exists("0" * 64)


def test_get_refuses_objects_over_the_byte_limit(store: ObjectStore) -> None:
    stored = store.put(b"x" * 5000)
    with pytest.raises(StorageError) as caught:
        store.get(stored.key, max_bytes=1000)
    assert caught.value.code == "IMAGE_TOO_LARGE" and "5000 bytes" in str(caught.value)
    assert store.get(stored.key, max_bytes=5000) == b"x" * 5000  # at the limit: read whole
    assert store.get(stored.key) == b"x" * 5000  # the refused read left no half-read connection behind
