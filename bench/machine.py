"""What every benchmark table prints first: the machine and the command."""
from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return (f"machine: {cpu}, {os.cpu_count()} cores, GPU: {gpu}, Python {platform.python_version()}\n"
            f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
