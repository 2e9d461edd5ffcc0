"""`billstream infra up|down|status|logs|fetch|provision|grant`."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from billstream_core.settings import Settings
from infra.cluster import with_brokers
from infra.security import ADMIN, COMPONENTS, Credentials, provision_kafka, provision_storage
from infra.stack import LocalStack, ServiceStatus


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("infra", help="start/stop the local Kafka (KRaft) + MinIO stack",
                            description="Fetch/build on first use, then run Kafka and MinIO on loopback.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (("up", "start both (idempotent), create topics and bucket"),
                            ("down", "stop the processes this stack started"),
                            ("status", "what runs where")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.add_argument("--brokers", type=int, choices=(1, 3), default=None,
                            help="Kafka nodes: 1 (default) or a replicated 3-node KRaft cluster on loopback "
                                 "(BILLSTREAM_INFRA__KAFKA_BROKERS)")
        action.add_argument("--secure", action="store_true",
                            help="TLS + SASL/SCRAM-SHA-512 with ACLs on Kafka, a least-privilege MinIO user per "
                                 "component; its own state directory (BILLSTREAM_INFRA__SECURE)")
    actions.add_parser("fetch", help="only fetch/build Kafka, MinIO, kustomize (for deploy/k8s) and "
                                          "Toxiproxy (for the fault suite) into the cache")
    actions.add_parser("provision", help="create the topics and the bucket on running services")
    grant = actions.add_parser(
        "grant", help="create each component's Kafka user and ACLs, and its MinIO user and policy, on running "
                      "services (a cluster's own Kafka and MinIO too), as the admin these settings name")
    grant.add_argument("--credentials", type=Path, required=True,
                       help="JSON file {component: {kafka_password, storage_secret}} for "
                            f"{', '.join(c for c in COMPONENTS if c != ADMIN)} (e.g. mounted from a Secret)")
    logs = actions.add_parser("logs", help="last lines of each service's log")
    logs.add_argument("-n", "--lines", type=int, default=40)
    parser.set_defaults(run=run)


def print_status(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        print(json.dumps([asdict(s) for s in statuses]))
        return
    for s in statuses:
        state = f"running (pid {s.pid})" if s.running else "stopped"
        print(f"{s.name:<8} {state:<22} {s.address:<22} log: {s.log_path}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "grant":
        credentials = Credentials.existing(args.credentials)
        provision_kafka(settings, credentials)
        provision_storage(settings, credentials)
        print(f"granted: Kafka users and ACLs, MinIO users and policies for "
              f"{', '.join(c for c in COMPONENTS if c != ADMIN)}")
        return 0
    if getattr(args, "secure", False):
        settings = settings.model_copy(update={"infra": settings.infra.model_copy(update={"secure": True})})
    brokers = getattr(args, "brokers", None) or settings.infra.kafka_brokers
    if brokers > 1:
        settings = with_brokers(settings, brokers)
    stack = LocalStack(settings)
    if args.action == "up":
        print_status(stack.up(), args.json)
        if brokers > 1 and not args.json:
            print(f"clients of this cluster: export BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS="
                  f"{settings.kafka.bootstrap_servers} BILLSTREAM_TOPICS__REPLICATION_FACTOR="
                  f"{settings.topics.replication_factor} BILLSTREAM_INFRA__KAFKA_BROKERS={brokers}")
        return 0
    if args.action == "down":
        stopped = stack.down()
        if args.json:
            print(json.dumps({"stopped": stopped}))
        else:
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.action == "fetch":
        from infra.toolchain import kustomize_binary, toxiproxy_binary

        cache = settings.infra.cache_dir
        paths = stack.prepare() | {"kustomize": str(kustomize_binary(cache)), "toxiproxy": str(toxiproxy_binary(cache))}
        print("\n".join(f"{name}: {path}" for name, path in paths.items()))
        return 0
    if args.action == "provision":
        stack.provision()
        print("topics and bucket are in place")
        return 0
    if args.action == "status":
        statuses = stack.status()
        print_status(statuses, args.json)
        return 0 if all(s.running for s in statuses) else 3
    for name, lines in stack.logs(args.lines).items():
        print(f"==> {name} <==")
        print("\n".join(lines))
    return 0
