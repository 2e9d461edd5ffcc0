"""The fault suite's fast subset (the full suite: `python -m bench.faults`): a broker killed
on the three-node cluster, object storage stopped, a worker paused into a zombie in the
middle of a batch, the network between the workers and the broker cut. Every order
submitted gets exactly one result."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults.__main__ import stack
from bench.faults.cases import Context, broker_killed, network_cut, storage_outage, zombie_worker_mid_batch
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


def test_object_storage_stopped_within_the_patience_completes_every_order(one_node: tuple[LocalStack, Settings],
                                                                          tmp_path: Path) -> None:
    row = storage_outage(context(one_node, tmp_path))
    print(row)
    assert row.submitted > 20 and (row.lost, row.duplicates) == (0, 0), row
    assert "every order RECOGNIZED" in row.notes


def test_a_zombie_paused_mid_batch_loses_and_doubles_nothing(one_node: tuple[LocalStack, Settings],
                                                            tmp_path: Path) -> None:
    """Its partitions move while it holds a batch; awake, it must not commit that batch."""
    row = zombie_worker_mid_batch(context(one_node, tmp_path))
    print(row)
    assert row.submitted > 20 and (row.lost, row.duplicates) == (0, 0), row


def test_a_network_cut_between_workers_and_broker_loses_and_doubles_nothing(one_node: tuple[LocalStack, Settings],
                                                                          tmp_path: Path) -> None:
    row = network_cut(context(one_node, tmp_path))
    print(row)
    assert row.submitted > 20 and (row.lost, row.duplicates) == (0, 0), row
