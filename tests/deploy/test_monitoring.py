"""The alert rules and the Grafana dashboard ask only for metrics the processes export:
a renamed metric would silently blank a panel or never fire an alert."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import yaml
from prometheus_client import CollectorRegistry

from http_api.metrics import ApiMetrics
from inference_worker.metrics import WorkerMetrics
from stream_app.metrics import StreamMetrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ROUTER_STATS = ("routed_new", "answered_from_cache", "answered_first_hop", "dropped_repeats", "waiting", "aborts",
                "transactions")
PROMQL_WORDS = {"sum", "by", "rate", "increase", "deriv", "and", "or", "scalar", "histogram_quantile", "max", "count",
                "le", "without", "on", "bool", "avg", "min", "group"}


def exported() -> set[str]:
    names: set[str] = {"up"}
    worker = WorkerMetrics("g")
    worker.lag.on_stats('{"topics": {"w": {"partitions": {"0": {"partition": 0, "consumer_lag_stored": 1}}}}}')
    router = SimpleNamespace(stats=dict.fromkeys(ROUTER_STATS, 0), index={}, orders={}, recognised=[], lag=worker.lag)
    registries: list[CollectorRegistry] = [worker.registry, ApiMetrics().registry,
                                           StreamMetrics(router, lambda: 0, "v").registry]  # type: ignore[arg-type]
    for registry in registries:
        for family in registry.collect():
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
            names |= {sample.name for sample in family.samples} | {family.name}
            names |= {family.name + suffix for suffix in suffixes.get(family.type, ())}  # series not yet labelled
    return names


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\"[^\"]*\"", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    by_clauses = set(re.findall(r"by \(([^)]*)\)", expr))
    labels = {w.strip() for clause in by_clauses for w in clause.split(",")}
    return words - PROMQL_WORDS - labels


def test_every_alert_and_panel_reads_an_exported_metric() -> None:
    names = exported()
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"BillstreamLagGrowing", "BillstreamErrorRate", "BillstreamNoResults",
                                           "BillstreamDeadLetters"}
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        wanted = metric_names(expr)
        assert wanted, expr
        assert wanted <= names, f"{sorted(wanted - names)} in {expr!r} are not exported"
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
