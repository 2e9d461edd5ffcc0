"""The router's state on disk: one RocksDB database (rocksdict, raw bytes: never pickle)
holding JSON values under (space, partition, key).

In memory, the router's image index, its remembered orders and its view of recognised
images grew with every distinct image and order (a recognised result is tens of KB as
Python objects). On disk, the process holds RocksDB's write buffers and block cache, both
of fixed size, whatever it has seen.

The database is scratch: it is emptied when the router starts, and each partition is
rebuilt from its compacted changelog when the router is assigned it. So it needs no
write-ahead log, and two router incarnations never trust each other's files.
"""
from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

INDEX, ORDERS, RECOGNISED = b"i", b"o", b"r"  # image index, orders seen, recognised images (all partitions)
WRITE_BUFFER_BYTES = 2 * 2**20  # per memtable; two at most
BLOCK_CACHE_BYTES = 8 * 2**20  # shared by every space and partition


def _prefix(space: bytes, partition: int) -> bytes:
    return space + partition.to_bytes(4, "big")


class StateStore:
    """JSON objects by (space, partition, key), with a count of keys per space and partition
    (for metrics, without a scan). Safe to use from the router's thread and the view's."""

    def __init__(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)  # scratch: see the module's docstring
        path.mkdir(parents=True)
        self.path = path
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_max_open_files(64)
        options.set_keep_log_file_num(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
        options.set_block_based_table_factory(table)
        self._db = Rdict(str(path), options)
        writes = WriteOptions()
        writes.disable_wal = True  # type: ignore[method-assign,assignment]  # a property at run time; the stub says a method
        self._db.set_write_options(writes)
        self._counts: dict[tuple[bytes, int], int] = {}
        self._lock = threading.Lock()  # the counts: the view writes from its own thread

    def close(self) -> None:
        self._db.close()

    def get_raw(self, space: bytes, partition: int, key: str) -> bytes | None:
        value = self._db.get(_prefix(space, partition) + key.encode())
        return None if value is None else bytes(value)

    def get(self, space: bytes, partition: int, key: str) -> dict[str, Any] | None:
        """A fresh copy, the caller's to edit."""
        value = self.get_raw(space, partition, key)
        return None if value is None else json.loads(value)

    def write(self, changes: list[tuple[bytes, int, str, bytes | None]]) -> None:
        """(space, partition, key, JSON bytes or None to delete), applied at once."""
        if not changes:
            return
        batch = WriteBatch(raw_mode=True)
        deltas: dict[tuple[bytes, int], int] = {}
        latest: dict[bytes, bytes | None] = {}
        for space, partition, key, value in changes:
            latest[_prefix(space, partition) + key.encode()] = value
        for full_key, value in latest.items():
            existed = self._db.get(full_key) is not None
            if value is None:
                batch.delete(full_key)
            else:
                batch.put(full_key, value)
            delta = (value is not None) - existed
            if delta:
                counted = (full_key[:1], int.from_bytes(full_key[1:5], "big"))
                deltas[counted] = deltas.get(counted, 0) + delta
        self._db.write(batch)
        with self._lock:
            for counted, delta in deltas.items():
                self._counts[counted] = self._counts.get(counted, 0) + delta

    def put(self, space: bytes, partition: int, key: str, value: dict[str, Any] | None) -> None:
        raw = None if value is None else json.dumps(value, separators=(",", ":")).encode()
        self.write([(space, partition, key, raw)])

    def items(self, space: bytes, partition: int) -> Iterator[tuple[str, dict[str, Any]]]:
        prefix = _prefix(space, partition)
        cursor = self._db.iter()
        cursor.seek(prefix)
        while cursor.valid():
            key = bytes(cursor.key())
            if not key.startswith(prefix):
                break
            yield key[len(prefix):].decode(), json.loads(cursor.value())
            cursor.next()

    def drop(self, space: bytes, partition: int) -> None:
        """Forget one partition of a space (revoked, or about to be restored anew)."""
        self._db.delete_range(_prefix(space, partition), _prefix(space, partition + 1))
        with self._lock:
            self._counts.pop((space, partition), None)

    def count(self, space: bytes, partition: int | None = None) -> int:
        with self._lock:
            if partition is not None:
                return self._counts.get((space, partition), 0)
            return sum(n for (s, _), n in self._counts.items() if s == space)


class PartitionedState:
    """One space of the store as the router uses it: the partitions it holds, and their entries."""

    def __init__(self, store: StateStore, space: bytes) -> None:
        self.store, self.space = store, space
        self.owned: set[int] = set()

    def __contains__(self, partition: object) -> bool:
        return partition in self.owned

    def __len__(self) -> int:
        return self.store.count(self.space)

    def get(self, partition: int, key: str) -> dict[str, Any] | None:
        return self.store.get(self.space, partition, key) if partition in self.owned else None

    def items(self, partition: int) -> Iterator[tuple[str, dict[str, Any]]]:
        return self.store.items(self.space, partition)

    def adopt(self, partition: int) -> None:
        """Hold ``partition`` from now on, starting empty (its restore fills it)."""
        self.store.drop(self.space, partition)
        self.owned.add(partition)

    def release(self, partition: int) -> None:
        self.owned.discard(partition)
        self.store.drop(self.space, partition)

    def write(self, partition: int, changes: list[tuple[str, bytes | None]]) -> None:
        self.store.write([(self.space, partition, key, value) for key, value in changes])
