import logging
import os

import pytest
from pydantic import ValidationError

from billstream_core.errors import SettingsError
from billstream_core.settings import load_settings

SECRET = "s3cr3t-value-never-printed"


def test_defaults_are_loopback_and_frozen() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers.startswith("127.0.0.1:")
    with pytest.raises(ValidationError, match="frozen"):
        settings.kafka.client_id = "changed"  # type: ignore[misc]


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("BILLSTREAM_TOPICS__RESULTS_PARTITIONS", "12")
    monkeypatch.setenv("BILLSTREAM_LIMITS__MAX_IMAGE_PIXELS", "1000000")
    settings = load_settings()
    assert settings.kafka.first_server == ("broker-a", 9092)
    results = [spec for spec in settings.topics.all() if spec.name == "bills.results"]
    assert results[0].partitions == 12
    assert settings.topics.results == "bills.results"  # one variable changed one thing
    assert settings.limits.max_image_pixels == 1_000_000


def test_secrets_never_appear_in_repr_str_or_logs(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BILLSTREAM_STORAGE__SECRET_KEY", SECRET)
    monkeypatch.setenv("BILLSTREAM_KAFKA__SASL_PASSWORD", SECRET)
    settings = load_settings()
    assert settings.storage.secret_key.get_secret_value() == SECRET
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s / %r", settings, settings)
    for text in (repr(settings), str(settings), settings.model_dump_json(), caplog.text):
        assert SECRET not in text


@pytest.mark.parametrize(("variable", "value", "mentions"), [
    ("BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS", "no-port-here", "BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS"),
    ("BILLSTREAM_TOPICS__WORK_PARTITIONS", "0", "BILLSTREAM_TOPICS__WORK_PARTITIONS"),
    ("BILLSTREAM_STORAGE__SECRET_KEY", "short", "BILLSTREAM_STORAGE__SECRET_KEY"),
    ("BILLSTREAM_LIMITS__MAX_IMAGE_BYTES", "lots", "BILLSTREAM_LIMITS__MAX_IMAGE_BYTES"),
    ("BILLSTREAM_TOPICS__SUBMITTED", "has spaces", "BILLSTREAM_TOPICS__SUBMITTED"),
])
def test_malformed_settings_give_one_line_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, mentions: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert mentions in message
    assert "\n" not in message
    assert value not in message or variable != "BILLSTREAM_STORAGE__SECRET_KEY"


def test_settings_env_round_trips_through_a_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from billstream_core.settings import settings_env

    original = load_settings(topics={"submitted": "x.submitted", "results_partitions": 3},
                             storage={"secret_key": "s3cr3t-value", "secure": True}, worker={"threads": 2})
    env = settings_env(original)
    assert env["BILLSTREAM_STORAGE__SECRET_KEY"] == "s3cr3t-value" and env["BILLSTREAM_STORAGE__SECURE"] == "true"
    for key in [k for k in os.environ if k.startswith("BILLSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original
