from pathlib import Path

import pytest

from billstream_core.errors import SettingsError
from billstream_core.settings import load_settings
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
