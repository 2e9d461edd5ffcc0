"""The secure stack's grant table and the local cluster's layout, without starting anything."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from billstream_core.errors import InfraError
from billstream_core.settings import load_settings
from infra.certs import ensure_tls
from infra.cluster import cluster_ports, with_brokers
from infra.kafka_local import BrokerSecurity, _argfile_line, server_properties
from infra.security import COMPONENTS, Credentials, kafka_grants, storage_policy, write_env_files


def test_each_principal_gets_only_what_its_job_needs() -> None:
    settings = load_settings()
    grants = kafka_grants(settings)
    topics = settings.topics

    def can(principal: str, operation: str, topic: str) -> bool:
        return any(g.principal == principal and g.resource == "TOPIC" and g.operation == operation
                   and (g.name == topic or (g.prefixed and topic.startswith(g.name))) for g in grants)

    assert can("producer", "WRITE", topics.submitted) and not can("producer", "READ", topics.submitted)
    assert not any(can("producer", op, topics.results) for op in ("READ", "WRITE", "DESCRIBE"))
    assert can("worker", "READ", topics.work) and can("worker", "WRITE", topics.results)
    assert not can("worker", "WRITE", topics.submitted) and not can("worker", "READ", topics.results)
    assert can("reader", "READ", topics.results) and not can("reader", "WRITE", topics.results)
    assert not any(g.principal == "reader" and g.resource == "TOPIC" and g.name != topics.results for g in grants)
    assert not any(g.principal == "admin" for g in grants)  # a super user needs no ACL
    assert storage_policy(settings, "producer")["Statement"][0]["Action"] == ["s3:PutObject"]  # type: ignore[index]
    assert storage_policy(settings, "worker")["Statement"][0]["Action"] == ["s3:GetObject"]  # type: ignore[index]
    assert storage_policy(settings, "reader") is None and storage_policy(settings, "stream") is None


def test_credentials_and_env_files_are_private_and_never_shown(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "secure" / "credentials.json")
    secrets = [v for entry in json.loads(credentials.path.read_text()).values() for v in entry.values()]
    assert stat.S_IMODE(credentials.path.stat().st_mode) == 0o600
    assert not any(secret in repr(credentials) for secret in secrets)
    assert Credentials(credentials.path).kafka_password("worker") == credentials.kafka_password("worker")  # kept
    tls = ensure_tls(tmp_path / "secure" / "tls")
    written = write_env_files(tmp_path / "secure", load_settings(), credentials, tls.ca)
    assert set(written) == set(COMPONENTS)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written.values())
    assert stat.S_IMODE(tls.broker.stat().st_mode) == 0o600  # the broker's private key
    worker = written["worker"].read_text()
    assert "SASL_USERNAME=worker" in worker and credentials.kafka_password("producer") not in worker
    properties = server_properties(port=1, controller_port=2, data_dir=tmp_path,
                                   security=BrokerSecurity(tls, credentials.kafka_password("admin")))
    assert "allow.everyone.if.no.acl.found=false" in properties
    assert "listeners=SASL_SSL://127.0.0.1:1,CONTROLLER://127.0.0.1:2" in properties
    assert "PLAINTEXT" not in properties  # no listener a client could reach without TLS and a password


def test_the_storage_tool_arguments_must_be_plain_words() -> None:
    assert _argfile_line("SCRAM-SHA-512=[name=admin,password=abc_DEF-123]") == \
        "SCRAM-SHA-512=[name=admin,password=abc_DEF-123]"
    for bad in ("/state dir/config", 'a"b', "x#y", ""):
        with pytest.raises(InfraError):
            _argfile_line(bad)


def test_a_three_node_cluster_gets_distinct_ports_and_replicated_topics() -> None:
    settings = with_brokers(load_settings(), 3)
    ports = cluster_ports(settings, 3)
    assert ports == [(19092, 19093), (19094, 19095), (19096, 19097)]
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert settings.topics.replication_factor == 3 and settings.infra.kafka_brokers == 3
    every = {p for pair in ports for p in pair}
    assert len(every) == 6
    one = server_properties(port=19092, controller_port=19093, data_dir=Path("/d"), node_id=1,
                            voters="1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097", cluster_size=3)
    assert "min.insync.replicas=2" in one and "transaction.state.log.replication.factor=3" in one
