"""Who may do what on the secure stack: one Kafka principal (SASL/SCRAM-SHA-512 over TLS)
and one MinIO user per component, each with the least it needs. The same table drives
the local stack (``billstream infra up --secure``) and what the deployment files describe.

  producer  writes bills.submitted; puts images (no get, no delete)
  api       as producer, and reads images back (GET /v1/bills/{n}/image, idempotency records)
  worker    reads bills.work; writes bills.results and bills.dead-letter; gets images
  stream    the router and the Faust app: reads submitted and results, writes work and
            results (cache answers), owns its internal topics and groups; no storage access
  reader    reads bills.results only
  admin     the brokers' own principal and provisioning (a super user); MinIO's root user

Passwords are generated once into ``<state>/secure/credentials.json`` (mode 0600); each
component's settings are written beside it as ``<component>.env`` (0600), for
``billstream --env-file``. Nothing here is printed or put on a command line.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from billstream_core.settings import Settings

COMPONENTS = ("admin", "producer", "api", "worker", "stream", "reader")
ADMIN = "admin"
SCRAM = "SCRAM-SHA-512"
RESULTS_READER_GROUPS = ("billstream-results", "billstream-demo")  # ResultsReader's group prefixes


@dataclass(frozen=True)
class Grant:
    """One Kafka ACL: ALLOW ``operation`` on a resource (``prefixed``: every name starting so)."""
    principal: str
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str
    operation: str  # READ, WRITE, DESCRIBE, CREATE, ...
    prefixed: bool = False


def kafka_grants(settings: Settings) -> list[Grant]:
    topics, stream = settings.topics, settings.stream.app_id
    workers = settings.worker.group_id
    grants: list[Grant] = []

    def allow(principal: str, resource: str, name: str, *operations: str, prefixed: bool = False) -> None:
        grants.extend(Grant(principal, resource, name, op, prefixed) for op in operations)

    for producer in ("producer", "api"):
        allow(producer, "TOPIC", topics.submitted, "WRITE", "DESCRIBE")
    allow("worker", "TOPIC", topics.work, "READ", "DESCRIBE")
    allow("worker", "GROUP", workers, "READ")
    for topic in (topics.results, topics.dead_letter):
        allow("worker", "TOPIC", topic, "WRITE", "DESCRIBE")
    allow("worker", "TRANSACTIONAL_ID", f"{workers}-", "WRITE", "DESCRIBE", prefixed=True)
    for topic in (topics.submitted, topics.results):
        allow("stream", "TOPIC", topic, "READ", "WRITE", "DESCRIBE")
    allow("stream", "TOPIC", topics.work, "WRITE", "DESCRIBE")
    allow("stream", "TOPIC", topics.dead_letter, "DESCRIBE")
    allow("stream", "TOPIC", stream, "READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", prefixed=True)
    allow("stream", "GROUP", stream, "READ", "DESCRIBE", prefixed=True)
    allow("stream", "TRANSACTIONAL_ID", stream, "WRITE", "DESCRIBE", prefixed=True)
    allow("reader", "TOPIC", topics.results, "READ", "DESCRIBE")
    for group in RESULTS_READER_GROUPS:
        allow("reader", "GROUP", group, "READ", prefixed=True)
    return grants


# what each component may do in the bucket; the others have no MinIO user at all
STORAGE_ACTIONS = {"producer": ["s3:PutObject"], "api": ["s3:PutObject", "s3:GetObject"], "worker": ["s3:GetObject"]}


def storage_policy(settings: Settings, component: str) -> dict[str, Any] | None:
    """The MinIO (S3) policy of ``component``'s user; None: no storage access at all."""
    actions = STORAGE_ACTIONS.get(component)
    if actions is None:
        return None
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": [f"arn:aws:s3:::{settings.storage.bucket}/*"]},
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [f"arn:aws:s3:::{settings.storage.bucket}"]},
    ]}


class Credentials:
    """Generated passwords of every component, kept in one 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            self._secrets: dict[str, dict[str, str]] = json.loads(path.read_text())
        else:
            self._secrets = {name: {"kafka_password": secrets.token_urlsafe(24),
                                    "storage_secret": secrets.token_urlsafe(24)} for name in COMPONENTS}
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(self._secrets, out)

    @classmethod
    def existing(cls, path: Path) -> Credentials:
        """Secrets made elsewhere (a secret store, a mounted Secret): never generated here,
        and every component but the admin needs its Kafka password, and its storage secret
        where it has a MinIO user."""
        from billstream_core.errors import SettingsError

        try:
            secrets_by_component = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SettingsError(f"credentials file {path} cannot be read: {exc.__class__.__name__}") from exc
        for component in COMPONENTS:
            if component == ADMIN:
                continue
            entry = secrets_by_component.get(component) if isinstance(secrets_by_component, dict) else None
            for key in ("kafka_password", "storage_secret") if component in STORAGE_ACTIONS else ("kafka_password",):
                if not isinstance(entry, dict) or not isinstance(entry.get(key), str) or not entry[key]:
                    raise SettingsError(f"credentials file {path} lacks {component}.{key}")
        return cls(path)

    def __repr__(self) -> str:
        return f"Credentials({self.path}, components={sorted(self._secrets)})"  # never the secrets

    def kafka_password(self, component: str) -> str:
        return self._secrets[component]["kafka_password"]

    def storage_secret(self, component: str) -> str:
        return self._secrets[component]["storage_secret"]

    def components(self) -> Iterator[str]:
        return iter(COMPONENTS)


def storage_user(component: str) -> str:
    return f"billstream-{component}"


def component_env(settings: Settings, credentials: Credentials, component: str, ca: Path) -> dict[str, str]:
    """The settings that make a process ``component`` on the secure stack."""
    env = {
        "BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BILLSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BILLSTREAM_KAFKA__SASL_MECHANISM": SCRAM,
        "BILLSTREAM_KAFKA__SASL_USERNAME": component,
        "BILLSTREAM_KAFKA__SASL_PASSWORD": credentials.kafka_password(component),
        "BILLSTREAM_KAFKA__SSL_CA_LOCATION": str(ca),
        "BILLSTREAM_STORAGE__ENDPOINT": settings.storage.endpoint,
        "BILLSTREAM_TOPICS__REPLICATION_FACTOR": str(settings.topics.replication_factor),
    }
    if component == ADMIN:  # MinIO's root user
        env["BILLSTREAM_STORAGE__ACCESS_KEY"] = settings.storage.access_key.get_secret_value()
        env["BILLSTREAM_STORAGE__SECRET_KEY"] = settings.storage.secret_key.get_secret_value()
    else:  # a component with no policy (stream, reader) has no MinIO user: every call is refused
        env["BILLSTREAM_STORAGE__ACCESS_KEY"] = storage_user(component)
        env["BILLSTREAM_STORAGE__SECRET_KEY"] = credentials.storage_secret(component)
    return env


def write_env_files(directory: Path, settings: Settings, credentials: Credentials, ca: Path) -> dict[str, Path]:
    written = {}
    for component in COMPONENTS:
        path = directory / f"{component}.env"
        body = "".join(f"{k}={v}\n" for k, v in component_env(settings, credentials, component, ca).items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(body)
        written[component] = path
    return written


def provision_kafka(admin: Settings, credentials: Credentials) -> None:
    """SCRAM users for every component but the admin (bootstrapped with the storage
    format), then the ACLs; both idempotent."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    from billstream_core.kafka import make_admin

    client = make_admin(admin.kafka)
    upserts: list[UserScramCredentialAlteration] = [UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                            credentials.kafka_password(name).encode())
               for name in COMPONENTS if name != ADMIN]
    for name, future in client.alter_user_scram_credentials(upserts).items():
        _result(future, f"creating the Kafka user {name}")
    bindings = [AclBinding(ResourceType[g.resource], g.name,
                           ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
                           f"User:{g.principal}", "*", AclOperation[g.operation], AclPermissionType.ALLOW)
                for g in kafka_grants(admin)]
    for binding, future in client.create_acls(bindings, request_timeout=30).items():
        _result(future, f"creating the ACL {binding}")


def provision_storage(settings: Settings, credentials: Credentials) -> None:
    """A MinIO user and policy per component that touches storage (as the root user)."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    from billstream_core.errors import InfraError

    admin = MinioAdmin(endpoint=settings.storage.endpoint, secure=settings.storage.secure,
                       credentials=StaticProvider(settings.storage.access_key.get_secret_value(),
                                                  settings.storage.secret_key.get_secret_value()))
    for component in COMPONENTS:
        policy = storage_policy(settings, component)
        if policy is None or component == ADMIN:
            continue
        name = storage_user(component)
        try:
            admin.user_add(name, credentials.storage_secret(component))
            admin.policy_add(name, policy=policy)
            admin.policy_set(name, user=name)
        except Exception as exc:  # noqa: BLE001 - minio's admin client raises bare errors; one line for the operator
            raise InfraError(f"creating the MinIO user {name} failed: {exc.__class__.__name__}") from exc


def _result(future: Any, what: str) -> None:
    from confluent_kafka import KafkaException

    from billstream_core.errors import InfraError

    try:
        future.result()
    except KafkaException as exc:
        raise InfraError(f"{what} failed: {exc.args[0].str() if exc.args else exc}") from exc


def secure_settings(settings: Settings, credentials: Credentials, ca: Path, component: str = ADMIN) -> Settings:
    """``settings`` as ``component`` on the secure stack (the admin by default: what the
    stack itself provisions with)."""
    env = component_env(settings, credentials, component, ca)
    kafka = settings.kafka.model_copy(update={
        "security_protocol": "SASL_SSL", "sasl_mechanism": SCRAM, "sasl_username": component,
        "sasl_password": SecretStr(env["BILLSTREAM_KAFKA__SASL_PASSWORD"]), "ssl_ca_location": ca})
    storage = settings.storage.model_copy(update={
        "access_key": SecretStr(env["BILLSTREAM_STORAGE__ACCESS_KEY"]),
        "secret_key": SecretStr(env["BILLSTREAM_STORAGE__SECRET_KEY"])})
    return settings.model_copy(update={"kafka": kafka, "storage": storage})


def root_storage(settings: Settings, credentials: Credentials) -> Settings:
    """MinIO's root user on the secure stack: its own generated password, not the default."""
    storage = settings.storage.model_copy(update={"access_key": SecretStr("billstream-root"),
                                                  "secret_key": SecretStr(credentials.storage_secret(ADMIN))})
    return settings.model_copy(update={"storage": storage})
