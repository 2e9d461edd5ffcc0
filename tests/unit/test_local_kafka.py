import base64
import uuid
from pathlib import Path

import pytest

from billstream_core.errors import SettingsError
from billstream_core.settings import load_settings
from infra.kafka_local import ProxiedListener, new_cluster_id, server_properties
from infra.stack import LocalStack


def _broker_command(tmp_path: Path) -> list[str]:
    return LocalStack(load_settings()).kafka.java_command(tmp_path, "kafka.Kafka", "server.properties")


def test_the_local_broker_runs_with_the_quick_jit_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLSTREAM_INFRA__CACHE_DIR", str(tmp_path))
    command = _broker_command(tmp_path)
    assert "-XX:TieredStopAtLevel=1" in command
    assert command[-2:] == ["kafka.Kafka", "server.properties"]


def test_full_jit_restores_the_jvm_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLSTREAM_INFRA__CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BILLSTREAM_INFRA__KAFKA_JIT", "full")
    assert not any(flag.startswith("-XX:TieredStopAtLevel") for flag in _broker_command(tmp_path))


def test_an_unknown_jit_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTREAM_INFRA__KAFKA_JIT", "fast")
    with pytest.raises(SettingsError, match="KAFKA_JIT"):
        load_settings()


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to '-' first in url-safe base64: the draw kafka-storage would take for a flag.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(b"\x10" * 16).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_the_broker_log_goes_where_the_settings_say(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLSTREAM_INFRA__STATE_DIR", str(tmp_path / "stack"))
    assert LocalStack(load_settings()).kafka.data_dir == tmp_path / "stack" / "kafka" / "data"
    monkeypatch.setenv("BILLSTREAM_INFRA__KAFKA_LOG_DIR", str(tmp_path / "shm" / "kafka"))
    kafka = LocalStack(load_settings()).kafka
    assert kafka.data_dir == tmp_path / "shm" / "kafka"
    config = server_properties(port=1, controller_port=2, data_dir=kafka.data_dir).splitlines()
    assert f"log.dirs={tmp_path / 'shm' / 'kafka'}" in config


def test_a_proxied_listener_advertises_the_proxy_to_the_clients_that_come_through_it() -> None:
    """Clients behind a proxy are given the proxy's address in metadata, so every connection
    they open crosses it; the others keep the direct address."""
    config = dict(line.split("=", 1) for line in server_properties(
        port=9092, controller_port=9093, data_dir=Path("/d"), proxied=ProxiedListener(9100, 9200)).splitlines() if line)
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,PROXIED://127.0.0.1:9100"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,PROXIED://127.0.0.1:9200"
    assert "PROXIED:PLAINTEXT" in config["listener.security.protocol.map"].split(",")
    assert "PROXIED" not in server_properties(port=9092, controller_port=9093, data_dir=Path("/d"))
