"""The Dockerfile (linted) and the compose file (validated against the Compose
specification's schema, its wiring checked against the code's settings). Neither is run:
these machines have no Docker engine."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from billstream_core.settings import Settings
from infra.toolchain import KAFKA_VERSION
from tests.support.dockerfile_lint import lint, parse
from tests.support.schemas import compose_schema

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
COMPOSE = ROOT / "infra" / "docker-compose.yml"
BILLSTREAM_SERVICES = ("provision", "stream-app", "worker-1", "worker-2", "api")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${NAME}, ${NAME:-default}, ${NAME-default}, $$."""
    def value(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    text = re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", value, text)
    return text.replace("$$", "$")


def _substitute(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The file as Compose reads it: YAML (anchors and merge keys resolved), then variables
    substituted in the string values."""
    loaded: dict[str, Any] = _substitute(yaml.safe_load(COMPOSE.read_text()), env or {})
    return loaded


def test_the_dockerfile_passes_the_lint() -> None:
    assert lint(DOCKERFILE.read_text()) == []


def test_the_lint_catches_what_it_is_for() -> None:
    bad = """FROM python:latest
ADD https://example.com/x.tar.gz /x
RUN apt-get install curl
RUN pip install torch
WORKDIR app
CMD billstream worker
"""
    rules = {p.split(": ")[1] for p in lint(bad)}
    assert rules == {"DF001", "DF002", "DF003", "DF004", "DF005", "DF006", "DF007", "DF009", "DF011", "DF012"}
    assert any("DF011" in p for p in lint("FROM debian:12\nUSER root\nHEALTHCHECK CMD [\"true\"]\n"))


def test_the_dockerfile_builds_cpu_and_cuda_images_from_one_file() -> None:
    instructions, stages = parse(DOCKERFILE.read_text())
    names = {s.name for s in stages}
    assert {"base-cpu", "base-cuda", "build", "runtime"} <= names
    assert any(i.keyword == "ARG" and i.args == "VARIANT=cpu" for i in instructions[:3])  # before the first FROM
    assert stages[-1].name == "runtime" and stages[-1].base == "base-${VARIANT}"
    copies = [i.args for i in stages[-1].instructions if i.keyword == "COPY"]
    assert copies and all("--from=build" in c for c in copies)  # the runtime holds the built venv only
    build = next(s for s in stages if s.name == "build")
    assert any(i.keyword == "COPY" and i.args == "models models" for i in build.instructions)  # weights inside
    ignore = [line for line in (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "**" and "!models" in ignore


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    # and it still validates with the credentials and keys given from the environment
    env = {"BILLSTREAM_STORAGE__SECRET_KEY": "a-longer-secret", "BILLSTREAM_API__KEYS": "abc:" + "0" * 64}
    assert not list(validator.iter_errors(compose(env)))


def _setting_exists(name: str) -> bool:
    section, _, field = name.removeprefix("BILLSTREAM_").lower().partition("__")
    model = Settings.model_fields.get(section)
    return model is not None and model.annotation is not None and field in model.annotation.model_fields  # type: ignore[union-attr]


def test_the_compose_file_runs_the_whole_system_wired_together() -> None:
    services = compose()["services"]
    assert {"kafka", "minio", *BILLSTREAM_SERVICES, "nginx", "prometheus"} <= services.keys()
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"  # the version the local stack runs
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing {needed}"
    for name in BILLSTREAM_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        env = service["environment"]
        unknown = [k for k in env if k.startswith("BILLSTREAM_") and not _setting_exists(k)]
        assert not unknown, f"{name}: {unknown} are not settings"
        assert env["BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        if name != "provision":
            assert service["depends_on"]["provision"]["condition"] == "service_completed_successfully"
            port = env["HEALTHCHECK_URL"].split(":")[2].split("/")[0]
            listens = {"stream-app": env.get("BILLSTREAM_STREAM__WEB_PORT", "16066"),
                       "api": env.get("BILLSTREAM_API__PORT"), "worker-1": env.get("BILLSTREAM_WORKER__PROBE_PORT"),
                       "worker-2": env.get("BILLSTREAM_WORKER__PROBE_PORT")}[name]
            assert port == listens, f"{name}'s health check asks port {port}; it listens on {listens}"
    assert services["worker-1"]["command"][0] == services["worker-2"]["command"][0] == "worker"
    assert services["worker-1"]["command"][-1] != services["worker-2"]["command"][-1]  # distinct transactional ids
    assert services["api"]["environment"]["BILLSTREAM_API__STREAM_URLS"] == "http://stream-app:16066"


def test_prometheus_scrapes_every_process_where_it_listens() -> None:
    services = compose()["services"]
    config = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"worker-1:9100", "worker-2:9100", "stream-app:16066", "api:8080"}
    mounted = [v.split(":")[0] for v in services["prometheus"]["volumes"]]
    for path in mounted:
        assert (COMPOSE.parent / path).resolve().is_file(), path
    nginx = (ROOT / "deploy" / "nginx" / "billstream.conf").read_text()
    assert "server api:8080;" in nginx and os.path.exists(COMPOSE.parent / "../deploy/nginx/billstream.conf")
