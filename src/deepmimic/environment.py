"""What a result was measured on: software versions and hardware, for results and reports."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def describe_environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """Python, torch, platform, CPU count, torch threads, and the device (with its GPU name)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if device is not None:
        info["device"] = str(device)
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
