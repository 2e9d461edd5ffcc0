"""A plain (not editable) install from a built wheel carries everything `billstream ocr`
needs: the weights, the language model, the manifest, the schemas and the validation fold."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from producers.samples import render_bill

REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_billstream_ocr_runs_from_a_wheel_install_outside_the_repository(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build leaves build/ and egg-info, and reads no stale ones
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "runs", ".bench", "*.egg-info", "__pycache__", ".*_cache"))
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist, source,
        cwd=tmp_path)
    (wheel,) = dist.glob("billstream-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel, cwd=tmp_path)
    # the dependencies (torch, onnxruntime, ...) come from this environment's site-packages, which is
    # read as a plain directory: its editable install of the repository is not activated there
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).strip())
    (site / "zz-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HOME": str(tmp_path / "home")}
    where = run(python, "-c", "import models, schemas, billstream_cli; print(models.__file__, schemas.__file__)",
                cwd=tmp_path, env=env)
    assert str(REPO) not in where and str(source) not in where and str(venv) in where, where

    image = tmp_path / "bill.png"
    image.write_bytes(render_bill(["WHEEL MART", "TOTAL: 12.50"]))
    out = json.loads(run(venv / "bin" / "billstream", "ocr", image, "--json", cwd=tmp_path, env=env).splitlines()[-1])
    texts = " ".join(line["text"] for line in out["lines"]).upper()
    assert "WHEEL" in texts and "12.50" in texts, out

    fold = run(python, "-c", "from models.training.receipts import read_val_fold; print(len(read_val_fold()))",
               cwd=tmp_path, env=env)
    assert int(fold) == 30
