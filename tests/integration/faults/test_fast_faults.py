"""The fault suite's fast subset (the full suite: `python -m bench.faults`): a broker killed
on the three-node cluster, object storage stopped, a worker paused into a zombie in the
middle of a batch, the network between the workers and the broker cut. Every order
submitted gets exactly one result."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.faults.__main__ import stack
from bench.faults.cases import Context, broker_killed, network_cut, storage_outage, zombie_worker_mid_batch
from bench.faults.harness import Row
from billstream_core.settings import Settings
from infra.stack import LocalStack


def context(started: tuple[LocalStack, Settings], log_dir: Path) -> Context:
    local, settings = started
    return Context(local, settings, log_dir, before_s=12.0, fault_s=15.0, after_s=12.0, rate=3.0)


@pytest.fixture(scope="module")
def one_node() -> Iterator[tuple[LocalStack, Settings]]:
    with stack(1) as started:
        yield started


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[tuple[LocalStack, Settings]]:
    with stack(3) as started:
        yield started


def test_a_broker_killed_and_restarted_loses_and_doubles_nothing(three_nodes: tuple[LocalStack, Settings],
                                                                 tmp_path: Path) -> None:
    row = broker_killed(context(three_nodes, tmp_path))
    print(row)
    assert row.submitted > 20 and (row.lost, row.duplicates) == (0, 0), row


@pytest.mark.parametrize(("case", "noted"), [
    (storage_outage, "every order RECOGNIZED"),  # MinIO back within the workers' patience
    (zombie_worker_mid_batch, ""),  # its partitions move while it holds a batch: awake, it must not commit it
    (network_cut, ""),  # the workers' link to the broker cut for 20 s
], ids=["storage-outage", "zombie-worker-mid-batch", "network-cut"])
def test_a_fault_on_the_one_node_stack_loses_and_doubles_nothing(case: Callable[[Context], Row], noted: str,
                                                                 one_node: tuple[LocalStack, Settings],
                                                                 tmp_path: Path) -> None:
    row = case(context(one_node, tmp_path))
    print(row)
    assert row.submitted > 20 and (row.lost, row.duplicates) == (0, 0), row
    assert noted in row.notes
