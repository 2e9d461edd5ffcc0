"""The secure stack: the pipeline end to end with one credential per component, and each
refusal least privilege promises (anonymous and plaintext clients, a producer reaching for
results, a worker putting or deleting images, a wrong password), and `infra grant`."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from billstream_core.errors import BrokerUnavailable, DeliveryError, KafkaError, ObjectNotFound, StorageAccessDenied
from billstream_core.kafka import ReliableProducer, make_consumer, wait_for_broker
from billstream_core.results_reader import ResultsReader
from billstream_core.serde import codec
from billstream_core.settings import Settings, load_settings
from billstream_core.storage import ObjectStore
from infra.security import ADMIN, COMPONENTS, STORAGE_ACTIONS
from producers.samples import render_bill
from producers.submit import BillSubmitter
from tests.support.pipeline import ServiceProcess, WorkerProcess, stop_all, wait_http
from tests.support.services import free_port, local_secure_stack


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with local_secure_stack(tmp_path_factory.mktemp("secure")) as env_dir:
        yield env_dir


def env_of(env_dir: Path, component: str) -> dict[str, str]:
    return {k: v for k, v in dotenv_values(env_dir / f"{component}.env").items() if v is not None}


def as_component(env_dir: Path, component: str, **overrides: object) -> Settings:
    return load_settings(_env_file=env_dir / f"{component}.env", **overrides)  # type: ignore[arg-type]


def test_the_pipeline_runs_with_one_credential_per_component(secure: Path, tmp_path: Path) -> None:
    web_port = free_port()
    stream_env = env_of(secure, "stream") | {"BILLSTREAM_STREAM__WEB_PORT": str(web_port)}
    stream_settings = as_component(secure, "stream", stream={"web_port": web_port})
    stream = ServiceProcess(stream_settings, "stream", tmp_path, ["stream-app"], env=stream_env)
    worker = WorkerProcess(as_component(secure, "worker"), "w-secure", tmp_path, env=env_of(secure, "worker"))
    try:
        wait_http(stream_settings, timeout=120)
        producer = as_component(secure, "producer")
        image = render_bill(["SECURE SHOP", "TOTAL 7.70"])
        order = BillSubmitter(producer).submit(image).order_number
        reader = as_component(secure, "reader")
        with ResultsReader(reader.kafka, reader.topics.results, timeout_s=60) as results:
            result = None
            for _ in range(240):
                polled = results.poll(0.5)
                if polled is not None and polled.order_number == order:
                    result = polled.record
                    break
        assert result is not None, (stream.log_path.read_text()[-2000:], worker.log_path.read_text()[-2000:])
        assert result["status"] == "RECOGNIZED" and "SECURE" in result["page_text"].upper()

        # who sent it: the producer's principal travels in the event (read as the admin)
        admin = as_component(secure, "admin")
        consumer = make_consumer(admin.kafka, f"audit-{uuid.uuid4().hex[:8]}")
        consumer.subscribe([admin.topics.submitted])
        events = []
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                events.append(codec("BillSubmitted").decode(message.value()))
                if events[-1]["order_number"] == order:
                    break
        consumer.close()
        assert events and events[-1]["order_number"] == order and events[-1]["submitted_by"] == "User:producer"

        # no secret on any process's command line, in the components' logs or in a repr
        secrets = [v for entry in json.loads((secure / "credentials.json").read_text()).values() for v in entry.values()]
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes().decode(errors="replace")
            except OSError:
                continue  # the process ended meanwhile
            assert not any(secret in argv for secret in secrets), f"a secret on the command line of {cmdline.parent}"
        for log in (stream.log_path, worker.log_path):
            assert not any(secret in log.read_text() for secret in secrets), log
        assert not any(secret in repr(producer) or secret in str(producer.model_dump()) for secret in secrets)
    finally:
        stop_all(worker, stream)


def test_anonymous_and_plaintext_clients_are_refused(secure: Path) -> None:
    producer = as_component(secure, "producer")
    plaintext = producer.kafka.model_copy(update={"security_protocol": "PLAINTEXT", "sasl_mechanism": None,
                                                  "sasl_username": None, "sasl_password": None})
    with pytest.raises(BrokerUnavailable):
        wait_for_broker(plaintext, timeout_s=5)
    anonymous_tls = plaintext.model_copy(update={"security_protocol": "SSL"})  # encrypted, but no one in particular
    with pytest.raises(BrokerUnavailable):
        wait_for_broker(anonymous_tls, timeout_s=5)
    untrusting = producer.kafka.model_copy(update={"ssl_ca_location": None})  # does not trust the stack's CA
    with pytest.raises(BrokerUnavailable, match="refused|SSL|certificate"):
        wait_for_broker(untrusting, timeout_s=5)
    anonymous_storage = ObjectStore(producer.storage.model_copy(update={
        "access_key": producer.storage.access_key.__class__("nobody"),
        "secret_key": producer.storage.secret_key.__class__("not-a-real-secret")}))
    with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|refused"):
        anonymous_storage.put(b"anonymous bytes", "application/octet-stream")


def test_a_producer_cannot_read_or_write_results(secure: Path) -> None:
    producer = as_component(secure, "producer")
    writer = ReliableProducer(producer.kafka)
    writer.produce(producer.topics.results, b"forged result", key="FORGED")
    with pytest.raises(DeliveryError, match="TOPIC_AUTHORIZATION|authoriz"):
        writer.flush(15)
    with pytest.raises(KafkaError, match="(?i)authoriz"):
        with ResultsReader(producer.kafka, producer.topics.results, timeout_s=10) as results:
            results.poll(2)
    # and it may put images, but not read them back
    store = ObjectStore(producer.storage)
    stored = store.put(render_bill(["PUT ONLY"]), "image/png")
    with pytest.raises(StorageAccessDenied):
        store.get(stored.key)


def test_a_worker_cannot_put_or_delete_images(secure: Path) -> None:
    stored = ObjectStore(as_component(secure, "producer").storage).put(render_bill(["KEEP ME"]), "image/png")
    worker = ObjectStore(as_component(secure, "worker").storage)
    assert worker.get(stored.key)  # what it is for
    with pytest.raises(StorageAccessDenied):
        worker.put(b"a worker writing", "application/octet-stream")
    with pytest.raises(StorageAccessDenied):
        worker.remove(stored.key)
    assert ObjectStore(as_component(secure, "api").storage).get(stored.key)  # still there


def test_a_wrong_password_gives_a_one_line_error(secure: Path, tmp_path: Path) -> None:
    env = {**os.environ, **env_of(secure, "producer"), "BILLSTREAM_KAFKA__SASL_PASSWORD": "not-the-password"}
    bill = tmp_path / "bill.png"
    bill.write_bytes(render_bill(["WRONG PASSWORD"]))
    done = subprocess.run([sys.executable, "-m", "billstream_cli.main", "submit", str(bill)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refused" in lines[0] and "producer" in lines[0] and "not-the-password" not in lines[0]


def test_grant_gives_every_component_the_secrets_of_a_credentials_file(secure: Path, tmp_path: Path) -> None:
    """What a cluster's Job runs (`billstream infra grant`): the users, ACLs and policies of
    the local stack, with secrets from a file; the stack's own are put back afterwards."""
    grantees = [c for c in COMPONENTS if c != ADMIN]
    new = {c: {"kafka_password": secrets.token_urlsafe(16)} | ({"storage_secret": secrets.token_urlsafe(16)}
                                                              if c in STORAGE_ACTIONS else {}) for c in grantees}
    granted = tmp_path / "credentials.json"
    granted.write_text(json.dumps(new))

    def grant(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "billstream_cli.main", "infra", "grant", "--credentials", str(path)],
                              env={**os.environ, **env_of(secure, "admin")}, capture_output=True, text=True,
                              timeout=120)

    def worker_with(kafka_password: str, storage_secret: str) -> Settings:
        env = env_of(secure, "worker") | {"BILLSTREAM_KAFKA__SASL_PASSWORD": kafka_password,
                                          "BILLSTREAM_STORAGE__SECRET_KEY": storage_secret}
        path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return load_settings(_env_file=path)  # type: ignore[call-arg]

    old = env_of(secure, "worker")
    try:
        done = grant(granted)
        assert done.returncode == 0, done.stderr
        assert new["worker"]["kafka_password"] not in done.stdout + done.stderr  # no secret printed
        fresh = worker_with(new["worker"]["kafka_password"], new["worker"]["storage_secret"])
        wait_for_broker(fresh.kafka, 30)
        with pytest.raises(ObjectNotFound):  # let in, and the object is simply not there
            ObjectStore(fresh.storage).get("ab" * 32)
        stale = worker_with(old["BILLSTREAM_KAFKA__SASL_PASSWORD"], old["BILLSTREAM_STORAGE__SECRET_KEY"])
        with pytest.raises(BrokerUnavailable, match="refused"):
            wait_for_broker(stale.kafka, 15)
    finally:
        restored = grant(secure / "credentials.json")
        assert restored.returncode == 0, restored.stderr

    (tmp_path / "partial.json").write_text(json.dumps({"worker": new["worker"]}))
    refused = grant(tmp_path / "partial.json")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "lacks producer.kafka_password" in refused.stderr
