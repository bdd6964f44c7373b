"""Process and machine figures for health, read from /proc and /sys (Linux: Pi, Jetson).

Each figure is None where the machine does not offer it (no thermal zone in a
container, no /proc on macOS), never an error: health must always publish.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

THERMAL_ROOT = Path("/sys/class/thermal")
_CPU_ZONE_HINTS = ("cpu", "soc", "tj")  # Pi: cpu-thermal; Jetson: CPU-therm, SOC*-therm, tj-therm


class CpuMeter:
    """This process's CPU use since the previous call, in percent of one core (like top)."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), _cpu_seconds())

    def percent(self) -> float:
        now, cpu = time.monotonic(), _cpu_seconds()
        (t0, c0), self._last = self._last, (now, cpu)
        return round(100.0 * (cpu - c0) / max(now - t0, 1e-6), 1)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_bytes() -> int | None:
    """Resident set size now (not the peak that getrusage reports)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_temp_c(root: Path = THERMAL_ROOT) -> float | None:
    """The CPU's temperature: the zone whose type names the CPU/SoC, else the hottest zone."""
    readings: list[tuple[bool, float]] = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            millideg = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip().lower() if (zone / "type").exists() else ""
        except (OSError, ValueError):
            continue
        readings.append((any(h in kind for h in _CPU_ZONE_HINTS), millideg / 1000.0))
    if not readings:
        return None
    cpu = [t for is_cpu, t in readings if is_cpu]
    return round(max(cpu or [t for _, t in readings]), 1)


def disk_free_bytes(path: Path) -> int | None:
    """Free bytes for an unprivileged writer on the filesystem holding ``path``."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
