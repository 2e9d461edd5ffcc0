"""Every Kubernetes overlay, rendered by kustomize as `kubectl apply -k` would, validated
against the Kubernetes API schemas (kubernetes-validate) and KEDA's documented ScaledObject
spec, and its wiring checked against the code: ports, probes, settings, scaling targets."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from billstream_cli.main import build_parser
from billstream_core.settings import Settings, load_settings
from infra.toolchain import kustomize_binary
from tests.support.keda import SCALED_OBJECT

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod", "gpu")
KUBERNETES_VERSION = "1.33.0"  # the API schemas validated against (kubernetes-validate ships them)


def render(target: str) -> list[dict[str, Any]]:
    binary = kustomize_binary(load_settings().infra.cache_dir)
    done = subprocess.run([str(binary), "build", str(ROOT / "deploy" / "k8s" / target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(f"overlays/{request.param}")


def test_every_rendered_manifest_passes_its_schema(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = overlay
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Service", "Ingress", "PodDisruptionBudget", "ConfigMap",
            "HorizontalPodAutoscaler", "ScaledObject", "Namespace"} <= kinds, kinds
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            jsonschema.validate(doc, SCALED_OBJECT)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schemas_refuse_a_broken_manifest() -> None:
    docs = render("overlays/dev")
    deployment = dict(by_kind(docs, "Deployment")["billstream-worker"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}  # a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = by_kind(docs, "ScaledObject")["billstream-worker"]
    trigger = {**scaled["spec"]["triggers"][0], "metadata": {**scaled["spec"]["triggers"][0]["metadata"],
                                                            "lagTreshold": "5"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled, "spec": {**scaled["spec"], "triggers": [trigger]}}, SCALED_OBJECT)


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = workload["spec"]["template"]["spec"]["containers"][0]
    return container


def _port(container: dict[str, Any], name: str) -> int:
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == name)


def _setting_exists(name: str) -> bool:
    section, _, field = name.removeprefix("BILLSTREAM_").lower().partition("__")
    model = Settings.model_fields.get(section)
    return model is not None and field in model.annotation.model_fields  # type: ignore[union-attr]


def test_workloads_probe_their_health_endpoints_as_non_root(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    workloads = by_kind(docs, "Deployment") | by_kind(docs, "StatefulSet")
    assert set(workloads) == {"billstream-worker", "billstream-api", "billstream-stream-app"}
    listens = {"billstream-worker": "BILLSTREAM_WORKER__PROBE_PORT", "billstream-api": "BILLSTREAM_API__PORT"}
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    for name, workload in workloads.items():
        container = _container(workload)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        for key in [*env, *config]:
            assert not key.startswith("BILLSTREAM_") or _setting_exists(key), f"{name}: {key} is not a setting"
        port_name = container["livenessProbe"]["httpGet"]["port"]
        port = _port(container, port_name)
        assert port == int(env.get(listens.get(name, ""), 16066)), f"{name} probes a port it does not listen on"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["readinessProbe"]["httpGet"]["port"] == port_name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"configMapRef", "secretRef"} == {k for ref in container["envFrom"] for k in ref}
    stream = workloads["billstream-stream-app"]
    assert stream["kind"] == "StatefulSet"  # a stable instance id: the router's transactional id
    assert "$(POD_NAME)" in _container(stream)["args"]
    for budget in by_kind(docs, "PodDisruptionBudget").values():
        labels = budget["spec"]["selector"]["matchLabels"]
        assert any(w["spec"]["selector"]["matchLabels"] == labels for w in workloads.values())


def test_the_api_scales_on_cpu_and_the_workers_on_their_lag(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    defaults = Settings()
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["billstream-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "billstream-api"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    scaled = by_kind(docs, "ScaledObject")["billstream-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(docs, "Deployment")
    kafka = scaled["spec"]["triggers"][0]["metadata"]
    assert scaled["spec"]["triggers"][0]["type"] == "kafka"
    assert kafka["consumerGroup"] == defaults.worker.group_id and kafka["topic"] == defaults.topics.work
    assert scaled["spec"]["maxReplicaCount"] <= defaults.topics.work_partitions  # more would sit idle
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert kafka["bootstrapServers"] == config["BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS"]  # the brokers the pods use
    ingress = by_kind(docs, "Ingress")["billstream"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] in by_kind(docs, "Service")


def test_each_overlay_does_what_it_is_for() -> None:
    dev, prod, gpu = (render(f"overlays/{name}") for name in OVERLAYS)
    assert {d["metadata"].get("namespace") for d in dev if d["kind"] != "Namespace"} == {"billstream-dev"}
    assert by_kind(dev, "Secret")  # the development credentials
    assert not by_kind(prod, "Secret") and not by_kind(gpu, "Secret")  # from the cluster's secret store
    assert by_kind(prod, "Ingress")["billstream"]["spec"]["tls"][0]["secretName"] == "billstream-tls"
    worker = _container(by_kind(gpu, "Deployment")["billstream-worker"])
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert (env["BILLSTREAM_WORKER__BACKEND"], env["BILLSTREAM_WORKER__DEVICE"]) == ("torch", "cuda")
    assert worker["image"].endswith("-cuda") and env["BILLSTREAM_WORKER__PROBE_PORT"] == "9100"  # merged, not replaced
    assert _container(by_kind(gpu, "Deployment")["billstream-api"])["image"].endswith("-cpu")
    cpu_worker = _container(by_kind(prod, "Deployment")["billstream-worker"])
    assert "nvidia.com/gpu" not in cpu_worker["resources"].get("limits", {})
    for docs in (dev, prod, gpu):  # a worker's engine threads are the cores it asks for
        container = _container(by_kind(docs, "Deployment")["billstream-worker"])
        threads = {e["name"]: e.get("value") for e in container["env"]}["BILLSTREAM_WORKER__THREADS"]
        assert threads == container["resources"]["requests"]["cpu"]
    for docs in (prod, gpu):  # least privilege: each component's own credential, made by the grant Job
        workloads = by_kind(docs, "Deployment") | by_kind(docs, "StatefulSet")
        secrets = {name: [ref["secretRef"]["name"] for ref in _container(w)["envFrom"] if "secretRef" in ref]
                   for name, w in workloads.items()}
        assert secrets == {"billstream-worker": ["billstream-worker"], "billstream-api": ["billstream-api"],
                           "billstream-stream-app": ["billstream-stream"]}
        job = by_kind(docs, "Job")["billstream-grant-access"]
        grant = _container(job)
        args = build_parser().parse_args(grant["args"])  # a command the CLI has
        assert (args.command, args.action) == ("infra", "grant")
        mount = next(m for m in grant["volumeMounts"] if str(args.credentials).startswith(m["mountPath"]))
        volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "billstream-grants"
        assert {"billstream-admin"} == {ref["secretRef"]["name"] for ref in grant["envFrom"] if "secretRef" in ref}
    assert not by_kind(dev, "Job")  # the development stack shares one credential
