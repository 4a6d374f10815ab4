"""Where and when a figure was measured: every report carries this, since figures mean nothing without it."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    """CPU, memory, GPU, load and library versions (the usual ones and `packages`), with the UTC date."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(_memory_gib() or 0, 1),
        "gpu": gpu,
        "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("torch", "onnxruntime", "tritonclient", "nvidia-pytriton", "locust",
                                              *packages)},
    }


def describe(info: dict[str, Any]) -> str:
    """One line for a report: '2 cores (…), 23.4 GiB, no GPU, load 0.3/0.5/0.9, 2026-11-21 10:00 UTC'."""
    load = "/".join(f"{x:g}" for x in info["load_average_1m_5m_15m"])
    gpu = info["gpu"] or "no GPU"
    return (f"{info['cpu_cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, {gpu}, "
            f"load average {load} at start, {info['date_utc']}")
