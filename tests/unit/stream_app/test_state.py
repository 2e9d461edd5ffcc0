"""The router's state store: JSON values by (space, partition, key) in RocksDB, with counts."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app.state import INDEX, ORDERS, PartitionedState, StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state")
    yield store
    store.close()


def test_values_round_trip_as_private_copies_and_spaces_and_partitions_stay_apart(store: StateStore) -> None:
    store.put(INDEX, 1, "k", {"n": [1, 2]})
    copy = store.get(INDEX, 1, "k")
    assert copy == {"n": [1, 2]}
    assert copy is not None
    copy["n"].append(3)  # the caller edits its copy, never the stored value
    assert store.get(INDEX, 1, "k") == {"n": [1, 2]}
    assert store.get(INDEX, 2, "k") is None and store.get(ORDERS, 1, "k") is None


def test_a_batch_applies_its_last_change_per_key_and_the_counts_follow(store: StateStore) -> None:
    store.write([(INDEX, 0, "a", b'{"v":1}'), (INDEX, 0, "b", b'{"v":2}'), (INDEX, 0, "a", b'{"v":3}'),
                 (INDEX, 255, "c", b'{"v":4}'), (ORDERS, 0, "x", b'{}')])
    assert store.get(INDEX, 0, "a") == {"v": 3}
    assert (store.count(INDEX, 0), store.count(INDEX), store.count(ORDERS)) == (2, 3, 1)
    store.write([(INDEX, 0, "a", None), (INDEX, 0, "gone", None), (INDEX, 0, "b", b'{"v":5}')])
    assert (store.count(INDEX, 0), store.get(INDEX, 0, "a"), store.get(INDEX, 0, "b")) == (1, None, {"v": 5})


def test_items_and_drop_stay_within_one_partition(store: StateStore) -> None:
    for partition in (0, 1, 256):  # 256: the partition's bytes must not be mistaken for a prefix of another
        store.write([(INDEX, partition, f"key-{n}", json.dumps({"p": partition}).encode()) for n in range(3)])
    assert sorted(store.items(INDEX, 1)) == [(f"key-{n}", {"p": 1}) for n in range(3)]
    store.drop(INDEX, 1)
    assert list(store.items(INDEX, 1)) == [] and store.count(INDEX, 1) == 0
    assert len(list(store.items(INDEX, 0))) == 3 and len(list(store.items(INDEX, 256))) == 3
    assert store.count(INDEX) == 6


def test_the_store_is_scratch_a_new_one_starts_empty(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "state")
    first.put(ORDERS, 0, "O-1", {"S": {}})
    first.close()
    second = StateStore(tmp_path / "state")
    try:
        assert second.get(ORDERS, 0, "O-1") is None and second.count(ORDERS) == 0
    finally:
        second.close()


def test_a_partition_is_held_from_adoption_to_release_and_adopted_again_empty(store: StateStore) -> None:
    orders = PartitionedState(store, ORDERS)
    assert 3 not in orders and orders.get(3, "O-1") is None
    orders.adopt(3)
    orders.write(3, [("O-1", b'{"S":{}}')])
    assert 3 in orders and orders.get(3, "O-1") == {"S": {}} and len(orders) == 1
    orders.release(3)
    assert 3 not in orders and len(orders) == 0
    store.put(ORDERS, 3, "stale", {})  # written while not held: an adoption starts from nothing
    orders.adopt(3)
    assert orders.get(3, "stale") is None and len(orders) == 0
