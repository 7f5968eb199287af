"""The machine line every benchmark prints: CPU model, cores and RAM (imported by the bench scripts)."""
from __future__ import annotations

import os
import platform


def cpu_and_ram() -> str:
    """``"2 CPU (AMD EPYC ...), 23.5 GiB RAM"`` from /proc/cpuinfo and /proc/meminfo."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as meminfo:
            ram = int(meminfo.readline().split()[1]) / 1024**2
    except OSError:
        return f"{os.cpu_count()} CPU ({cpu})"
    return f"{os.cpu_count()} CPU ({cpu}), {ram:.1f} GiB RAM"
