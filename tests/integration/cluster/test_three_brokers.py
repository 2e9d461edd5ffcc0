"""The three-node KRaft cluster (`billstream infra up --brokers 3`): up, its topics
replicated three ways with two in sync, `infra status` listing the nodes, and a round trip
of bills through the stream app and a worker bootstrapped from all three."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from billstream_core.kafka import make_admin
from billstream_core.settings import Settings, settings_env
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.pipeline import (
    ServiceProcess,
    WorkerProcess,
    assert_each_order_once,
    collect_results,
    isolated_settings,
    stop_all,
    wait_http,
)
from tests.support.services import local_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as settings:
        yield settings


def test_infra_status_lists_the_three_nodes(cluster: Settings) -> None:
    env = {**os.environ, **settings_env(cluster)}
    done = subprocess.run([sys.executable, "-m", "billstream_cli.main", "infra", "status", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    nodes = {s["name"]: s for s in json.loads(done.stdout)}
    assert {"kafka-1", "kafka-2", "kafka-3", "minio"} == set(nodes)
    assert all(s["running"] for s in nodes.values())
    assert ",".join(nodes[f"kafka-{n}"]["address"] for n in (1, 2, 3)) == cluster.kafka.bootstrap_servers


def test_bills_topics_have_three_replicas_and_two_in_sync(cluster: Settings) -> None:
    admin = make_admin(cluster.kafka)
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 3
    for topic in (cluster.topics.submitted, cluster.topics.work, cluster.topics.results):
        partitions = metadata.topics[topic].partitions.values()
        assert partitions and all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in partitions), topic
        resource = ConfigResource("topic", topic)
        assert admin.describe_configs([resource])[resource].result()["min.insync.replicas"].value == "2"


def test_a_round_trip_through_the_cluster(cluster: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(cluster)
    assert settings.kafka.bootstrap_servers.count(",") == 2  # every client bootstraps from all three
    stream = ServiceProcess(settings, "stream", tmp_path, ["stream-app"])
    worker = WorkerProcess(settings, "w-cluster", tmp_path)
    try:
        wait_http(settings, timeout=120)
        submitter = BillSubmitter(settings)
        images = [render_bill([f"CLUSTER SHOP {n}", f"TOTAL {n}.25"]) for n in range(3)]
        orders = {submitter.submit(image).order_number for image in images}
        orders.add(submitter.submit(images[0]).order_number)  # a repeat, from the cache
        found = collect_results(settings, orders, timeout=240)
        assert_each_order_once("cluster", orders, found, settings=settings, log_dir=tmp_path)
        assert sorted(r[0]["cached"] for r in found.values()) == [False, False, False, True]
    finally:
        stop_all(worker, stream)
