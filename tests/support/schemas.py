"""Published schemas the deployment files are validated against, fetched once from PyPI
into the user cache (never into the repository): the Compose specification's JSON schema as
the docker-compose 1.29.2 package ships it. The Kubernetes API schemas come installed with
the kubernetes-validate package."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from billstream_core.settings import load_settings

COMPOSE_PACKAGE = "docker-compose==1.29.2"
COMPOSE_SCHEMA = "compose/config/compose_spec.json"


def _cache() -> Path:
    path = load_settings().infra.cache_dir / "schemas"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compose_schema() -> dict[str, Any]:
    cached = _cache() / "compose_spec-1.29.2.json"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                                   "--dest", tmp, COMPOSE_PACKAGE], capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                pytest.fail(f"cannot fetch {COMPOSE_PACKAGE} from PyPI for its compose schema: "
                            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}", pytrace=False)
            with zipfile.ZipFile(wheels[0]) as wheel:
                cached.write_bytes(wheel.read(COMPOSE_SCHEMA))
    schema: dict[str, Any] = json.loads(cached.read_text())
    return schema
