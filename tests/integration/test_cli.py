"""The `billstream` command as a user runs it: real processes, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from billstream_core.settings import Settings
from tests.support.services import free_port


def billstream(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billstream_cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def service_env(settings: Settings) -> dict[str, str]:
    return {
        "BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BILLSTREAM_STORAGE__ENDPOINT": settings.storage.endpoint,
        "BILLSTREAM_STORAGE__ACCESS_KEY": settings.storage.access_key.get_secret_value(),
        "BILLSTREAM_STORAGE__SECRET_KEY": settings.storage.secret_key.get_secret_value(),
    }


def own_stack_env(state_dir: Path) -> dict[str, str]:
    return {
        "BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "BILLSTREAM_STORAGE__ENDPOINT": f"127.0.0.1:{free_port()}",
        "BILLSTREAM_INFRA__KAFKA_CONTROLLER_PORT": str(free_port()),
        "BILLSTREAM_INFRA__MINIO_CONSOLE_PORT": str(free_port()),
        "BILLSTREAM_INFRA__STATE_DIR": str(state_dir),
    }


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_smoke_round_trip_through_real_services(services: Settings) -> None:
    done = billstream("smoke", "--no-infra", "--json", env=service_env(services))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is True and len(summary["sha256"]) == 64


def test_infra_lifecycle_is_idempotent_and_leaves_no_process(tmp_path: Path) -> None:
    env = own_stack_env(tmp_path / "stack")
    first = billstream("infra", "up", "--json", env=env)
    assert first.returncode == 0, first.stderr
    pids = {s["name"]: s["pid"] for s in json.loads(first.stdout)}
    try:
        assert all(pid_alive(pid) for pid in pids.values())
        again = billstream("infra", "up", "--json", env=env)
        assert again.returncode == 0, again.stderr
        assert {s["name"]: s["pid"] for s in json.loads(again.stdout)} == pids  # nothing restarted
        status = billstream("infra", "status", "--json", env=env)
        assert status.returncode == 0 and all(s["running"] for s in json.loads(status.stdout))
    finally:
        down = billstream("infra", "down", "--json", env=env)
    assert down.returncode == 0, down.stderr
    assert sorted(json.loads(down.stdout)["stopped"]) == ["kafka", "minio"]
    assert not any(pid_alive(pid) for pid in pids.values())
    assert billstream("infra", "status", env=env).returncode == 3

    assert (tmp_path / "stack" / "kafka" / "data" / "meta.properties").is_file()  # the log's default place
    # a warm restart from the cache, with the broker's log moved elsewhere (BILLSTREAM_INFRA__KAFKA_LOG_DIR)
    env |= {"BILLSTREAM_INFRA__KAFKA_LOG_DIR": str(tmp_path / "kafka-log")}
    restarted = billstream("infra", "up", "--json", env=env)
    try:
        assert restarted.returncode == 0, restarted.stderr
        smoke = billstream("smoke", "--no-infra", "--json", env=env)
        assert smoke.returncode == 0, smoke.stderr
        assert (tmp_path / "kafka-log" / "meta.properties").is_file()
        assert any(path.name.startswith("bills.submitted-") for path in (tmp_path / "kafka-log").iterdir())
    finally:
        billstream("infra", "down", env=env)


def test_port_in_use_is_one_actionable_line(tmp_path: Path) -> None:
    env = own_stack_env(tmp_path / "stack")
    port = int(env["BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = billstream("infra", "up", env=env)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert f"port {port}" in message and "in use" in message
    assert "Traceback" not in done.stderr
    assert billstream("infra", "status", "--json", env=env).returncode == 3  # nothing left running


def test_missing_toolchain_is_one_actionable_line(tmp_path: Path) -> None:
    env = own_stack_env(tmp_path / "stack") | {
        "BILLSTREAM_INFRA__CACHE_DIR": str(tmp_path / "empty-cache"),
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                if not (Path(p) / "go").exists()),
    }
    done = billstream("infra", "up", env=env)
    assert done.returncode == 1
    assert "`go` not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").iterdir())


def test_unreachable_broker_is_one_actionable_line(services: Settings) -> None:
    env = service_env(services) | {"BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
                                    "BILLSTREAM_KAFKA__REQUEST_TIMEOUT_S": "2"}
    done = billstream("smoke", "--no-infra", env=env, timeout=60)
    assert done.returncode == 1
    assert "did not answer" in done.stderr and "billstream infra up" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_settings_exit_2_without_traceback() -> None:
    done = billstream("infra", "status", env={"BILLSTREAM_TOPICS__RESULTS_PARTITIONS": "-3"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "BILLSTREAM_TOPICS__RESULTS_PARTITIONS" in done.stderr
