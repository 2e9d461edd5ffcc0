"""The local stack's Kafka nodes: one combined node by default, or a KRaft cluster of N
(each node a broker and a controller on loopback, sharing one cluster id)."""
from __future__ import annotations

from billstream_core.settings import Settings
from infra.kafka_local import BrokerSecurity, LocalKafka


def cluster_ports(settings: Settings, brokers: int) -> list[tuple[int, int]]:
    """(broker, controller) ports of each node: the bootstrap list's when it names one
    address per node, else counted up by two from the first (19092, 19094, ...), each
    controller on kafka_controller_port + 2(N-1)."""
    servers = [s.strip() for s in settings.kafka.bootstrap_servers.split(",") if s.strip()]
    first = settings.kafka.first_server[1]
    ports = [int(s.rsplit(":", 1)[1]) for s in servers] if len(servers) == brokers else \
        [first + 2 * n for n in range(brokers)]
    return [(port, settings.infra.kafka_controller_port + 2 * n) for n, port in enumerate(ports)]


def with_brokers(settings: Settings, brokers: int) -> Settings:
    """Settings for a local stack of ``brokers`` nodes: clients bootstrap from all of them,
    and the bills topics are replicated to three (two in sync) when there are three."""
    ports = cluster_ports(settings, brokers)
    update = {"kafka": settings.kafka.model_copy(update={
                  "bootstrap_servers": ",".join(f"127.0.0.1:{p}" for p, _ in ports)}),
              "topics": settings.topics.model_copy(update={"replication_factor": min(3, brokers)}),
              "infra": settings.infra.model_copy(update={"kafka_brokers": brokers})}
    return settings.model_copy(update=update)


def kafka_nodes(settings: Settings, security: BrokerSecurity | None = None) -> list[LocalKafka]:
    infra = settings.infra
    common = {"cache_dir": infra.cache_dir, "state_dir": infra.resolved_state_dir, "heap": infra.kafka_heap,
              "quick_jit": infra.kafka_jit == "quick", "security": security}
    if infra.kafka_brokers == 1:
        return [LocalKafka(port=settings.kafka.first_server[1], controller_port=infra.kafka_controller_port,
                           data_dir=infra.kafka_log_dir, **common)]  # type: ignore[arg-type]
    ports = cluster_ports(settings, infra.kafka_brokers)
    voters = ",".join(f"{n + 1}@127.0.0.1:{controller}" for n, (_, controller) in enumerate(ports))
    cluster_id = infra.resolved_state_dir / "kafka-cluster.id"
    return [LocalKafka(port=port, controller_port=controller, name=f"kafka-{n + 1}", node_id=n + 1, voters=voters,
                       cluster_size=len(ports), cluster_id_file=cluster_id,
                       data_dir=infra.kafka_log_dir / f"kafka-{n + 1}" if infra.kafka_log_dir else None,
                       **common)  # type: ignore[arg-type]
            for n, (port, controller) in enumerate(ports)]
