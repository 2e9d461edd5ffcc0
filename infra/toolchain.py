"""Fetch and cache the server software: Kafka jars (Maven) and the MinIO binary (Go)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from billstream_core.errors import InfraError, ToolchainMissing

KAFKA_VERSION = "4.4.0"
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # master of 2026-02-12
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.7.1"  # renders deploy/k8s in the tests; built with go install like MinIO
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
TOXIPROXY_VERSION = "v2.12.0"  # the fault suite's network faults
_POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"

_HINTS = {
    "java": "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Maven (Debian: apt-get install maven)",
    "go": "install Go 1.24+ (https://go.dev/doc/install) and put it on PATH",
}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainMissing(f"`{tool}` not found on PATH: {_HINTS.get(tool, 'install it')}")
    return path


def _say(message: str) -> None:
    print(f"[infra] {message}", file=sys.stderr, flush=True)


def _kafka_libs_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def _minio_path(cache_dir: Path) -> Path:
    return cache_dir / f"minio-{MINIO_VERSION}" / "minio"


def check_toolchains(cache_dir: Path) -> None:
    """Fail before any download when a tool needed now (or to fetch what is missing) is absent."""
    require("java")
    if not (_kafka_libs_dir(cache_dir) / ".complete").exists():
        require("mvn")
    if not _minio_path(cache_dir).exists():
        require("go")


def kafka_libs(cache_dir: Path) -> Path:
    """Directory with the Kafka broker's jars, fetched from Maven Central on first use."""
    require("java")
    libs = _kafka_libs_dir(cache_dir)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = require("mvn")
    _say(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (first run, about a minute)")
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies",
         f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise InfraError(f"fetching Kafka jars with Maven failed: {' | '.join(tail)}")
    marker.touch()
    return libs


def _go_install(module: str, version: str, binary: Path, label: str, duration: str) -> Path:
    """``binary``, built with ``go install module@version`` into its directory on first use."""
    if binary.exists():
        return binary
    go = require("go")
    _say(f"building {label} {version} with `go install` into {binary.parent} (first run, {duration})")
    binary.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"{module}@{version}"],
        capture_output=True, text=True, env={**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"},
    )
    if result.returncode != 0 or not binary.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise InfraError(f"building {label} with go install failed: {' | '.join(tail)}")
    return binary


def minio_binary(cache_dir: Path) -> Path:
    """The MinIO server binary (several minutes to build the first time)."""
    return _go_install(MINIO_MODULE, MINIO_VERSION, _minio_path(cache_dir), "MinIO", "3-10 minutes")


def kustomize_binary(cache_dir: Path) -> Path:
    """kustomize: the tests render the Kubernetes overlays with it, as ``kubectl apply -k`` would."""
    return _go_install(KUSTOMIZE_MODULE, KUSTOMIZE_VERSION, cache_dir / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize",
                       "kustomize", "about a minute")


def toxiproxy_binary(cache_dir: Path) -> Path:
    """Toxiproxy's server: the fault suite puts it between the workers and the brokers to
    slow and cut their connections (the kernel's netem is not available everywhere)."""
    return _go_install(TOXIPROXY_MODULE, TOXIPROXY_VERSION, cache_dir / f"toxiproxy-{TOXIPROXY_VERSION}" / "server",
                       "Toxiproxy", "under a minute")
