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
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc's unit of CPU time


class CpuMeter:
    """This process's CPU use since the previous call, in percent of one core (like top)."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), _cpu_seconds())

    def percent(self) -> float:
        now, cpu = time.monotonic(), _cpu_seconds()
        (t0, c0), self._last = self._last, (now, cpu)
        return round(100.0 * (cpu - c0) / max(now - t0, 1e-6), 1)


class ThreadCpuMeter:
    """Each thread's CPU use since the previous call, in percent of one core, by the name the
    kernel shows (``top -H``; the agent names its threads, agent/threadnames.py): where the
    process's CPU goes, for someone who cannot log in to the device.

    FFmpeg's decoder threads (``av:…``) are summed as ``ffmpeg-decoders``; threads a native
    library started before the names were set carry the process name and are summed as
    ``native`` (OpenCV's worker pool, a runtime's thread pool); the main thread is ``main``.
    Threads that ended within the interval are not counted (a replayed clip's decoder threads
    end each time it loops). ``None`` without /proc.
    """

    MAX_ENTRIES = 12  # the busiest; a report is not a thread dump

    def __init__(self, tasks: Path = Path("/proc/self/task")) -> None:
        self._tasks = tasks
        self._last = (time.monotonic(), thread_ticks(tasks, os.getpid()))

    def percent(self) -> dict[str, float] | None:
        now, ticks = time.monotonic(), thread_ticks(self._tasks, os.getpid())
        (t0, before), self._last = self._last, (now, ticks)
        if ticks is None or before is None:
            return None
        per: dict[str, float] = {}
        for tid, (name, used) in ticks.items():
            previous = before.get(tid)
            # A thread renamed since (named after start-up) keeps its count; a smaller count is a
            # new thread that got an ended one's id.
            delta = used - previous[1] if previous is not None and used >= previous[1] else used
            per[name] = per.get(name, 0.0) + delta
        scale = 100.0 / _TICK / max(now - t0, 1e-6)
        busiest = sorted(per.items(), key=lambda kv: -kv[1])[: self.MAX_ENTRIES]
        return {name: round(used * scale, 1) for name, used in busiest if used > 0}


def thread_ticks(tasks: Path, pid: int) -> dict[int, tuple[str, int]] | None:
    """Every live thread of process ``pid`` (its ``/proc/<pid>/task``): tid -> (the name it is
    reported under, as :class:`ThreadCpuMeter` says, and utime + stime in clock ticks). None
    without /proc. ``scripts/bench_e2e.py`` reads an agent's threads with it too."""
    try:
        entries = list(tasks.iterdir())
    except OSError:
        return None
    main = ""
    out: dict[int, tuple[str, int]] = {}
    for task in sorted(entries, key=lambda t: t.name != str(pid)):  # the main thread first
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if task.name == str(pid):
            name, main = "main", comm
        elif comm == main:
            name = "native"
        else:
            name = "ffmpeg-decoders" if comm.startswith("av:") else comm
        out[int(task.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


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
