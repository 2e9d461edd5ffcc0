"""The host-wide CPU slot: processes and threads take turns, a killed holder frees it, and
the worker's settings pick the lock file."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from billstream_core.errors import SettingsError
from models.engine.cpu_slot import CpuSlot, cpu_set_name, default_slot_path
from models.engine.predictor import serving_options
from models.engine.runners import OnnxRunner
from models.engine.torch_runner import TorchRunner

REPO = Path(__file__).resolve().parents[3]
HOLDER = """
import sys, time
from pathlib import Path
from models.engine.cpu_slot import CpuSlot
slot = CpuSlot(Path(sys.argv[1]))
print("ready", flush=True)
with slot:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def start_holder(path: Path, hold_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(hold_s)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE)


def free_within(path: Path, seconds: float) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                time.sleep(0.02)
        return False
    finally:
        os.close(fd)


def test_cpu_set_name_writes_runs_as_taskset_does() -> None:
    assert cpu_set_name({0, 1, 2, 5}) == "0-2,5"
    assert cpu_set_name({3}) == "3"
    assert cpu_set_name({1, 3, 4}) == "1,3-4"


def test_another_process_waits_until_the_slot_is_released(tmp_path: Path) -> None:
    slot = CpuSlot(tmp_path / "cpu.lock")
    with slot:
        holder = start_holder(slot.path, 0)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        assert holder.poll() is None, "the other process ran while this one held the slot"
    out, _ = holder.communicate(timeout=30)
    assert out.strip() == "held" and holder.returncode == 0
    slot.close()


def test_a_killed_holder_frees_the_slot(tmp_path: Path) -> None:
    path = tmp_path / "cpu.lock"
    holder = start_holder(path, 60)
    try:
        assert holder.stdout is not None
        assert [holder.stdout.readline().strip() for _ in range(2)] == ["ready", "held"]
        assert not free_within(path, 0.3)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert free_within(path, 5)
    finally:
        holder.kill()
        holder.wait()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    slot = CpuSlot(tmp_path / "cpu.lock")
    entered = threading.Event()

    def second() -> None:
        with slot:
            entered.set()

    with slot:
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.3)
    assert entered.wait(5)
    thread.join()
    slot.close()


def test_a_symlink_in_place_of_the_lock_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / "cpu.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SettingsError, match="BILLSTREAM_WORKER__CPU_SLOT"):
        CpuSlot(tmp_path / "cpu.lock")


def test_worker_settings_choose_the_lock_file(tmp_path: Path) -> None:
    auto = serving_options("onnx-int8", "cpu", 2, "greedy", "auto").cpu_slot
    assert auto == default_slot_path()
    assert auto.name == f"billstream-cpu-{cpu_set_name(os.sched_getaffinity(0))}.lock"
    assert serving_options("onnx-int8", "cpu", 2, "greedy", "off").cpu_slot is None
    assert serving_options("onnx-int8", "cpu", 2, "greedy", str(tmp_path / "x.lock")).cpu_slot == tmp_path / "x.lock"
    assert serving_options("torch", "cuda", None, "greedy", "auto").cpu_slot is None  # a GPU queues on its own


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __enter__(self) -> None:
        self.calls.append("enter")

    def __exit__(self, *exc: object) -> None:
        self.calls.append("exit")


def test_a_cpu_runner_holds_the_slot_for_each_call_and_a_gpu_runner_never() -> None:
    slot = Recorder()
    runner = TorchRunner(torch.nn.Identity(), "cpu", slot=slot)
    batch = np.ones((2, 3), np.float32)
    assert np.array_equal(runner(batch), batch)
    runner(batch)
    assert slot.calls == ["enter", "exit"] * 2
    gpu_slot = Recorder()
    assert TorchRunner(torch.nn.Identity(), "cuda:0", slot=gpu_slot).slot is not gpu_slot


def test_an_onnx_runner_holds_the_slot_for_each_call(tmp_path: Path) -> None:
    net = torch.nn.Linear(3, 2)
    torch.onnx.export(net, (torch.rand(1, 3),), str(tmp_path / "net.onnx"), input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "batch"}})
    slot = Recorder()
    runner = OnnxRunner(tmp_path / "net.onnx", threads=1, slot=slot)
    batch = np.ones((4, 3), np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(batch)).numpy()
    assert np.allclose(runner(batch), expected, atol=1e-5)
    assert slot.calls == ["enter", "exit"]
