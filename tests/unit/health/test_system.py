from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from agent.health import system


def zone(root: Path, n: int, kind: str | None, millideg: str) -> None:
    d = root / f"thermal_zone{n}"
    d.mkdir(parents=True)
    (d / "temp").write_text(millideg + "\n")
    if kind is not None:
        (d / "type").write_text(kind + "\n")


def test_the_cpu_zone_wins_over_hotter_other_zones(tmp_path: Path) -> None:
    zone(tmp_path, 0, "gpu-thermal", "71000")
    zone(tmp_path, 1, "cpu-thermal", "48312")  # Raspberry Pi
    assert system.cpu_temp_c(tmp_path) == 48.3


def test_jetson_zones_and_unnamed_zones_fall_back_to_the_hottest(tmp_path: Path) -> None:
    zone(tmp_path / "jetson", 0, "CPU-therm", "39500")
    zone(tmp_path / "jetson", 1, "GPU-therm", "41000")
    assert system.cpu_temp_c(tmp_path / "jetson") == 39.5
    zone(tmp_path / "other", 0, None, "30000")
    zone(tmp_path / "other", 1, "acpitz", "52000")
    assert system.cpu_temp_c(tmp_path / "other") == 52.0


def test_no_thermal_zone_or_a_garbled_one_is_none(tmp_path: Path) -> None:
    assert system.cpu_temp_c(tmp_path / "absent") is None
    zone(tmp_path, 0, "cpu", "not a number")
    assert system.cpu_temp_c(tmp_path) is None


def test_process_figures_are_plausible(tmp_path: Path) -> None:
    meter = system.CpuMeter()
    sum(i * i for i in range(3_000_000))  # enough CPU time to register on any clock tick
    assert meter.percent() > 0
    rss = system.rss_bytes()
    assert rss is not None and rss > 10 * 2**20
    assert (system.disk_free_bytes(tmp_path) or 0) > 0
    assert system.disk_free_bytes(tmp_path / "missing") is None


def test_thread_figures_name_the_busy_thread(tmp_path: Path) -> None:
    from agent.threadnames import name_os_threads

    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(i * i for i in range(10_000))

    busy = threading.Thread(target=spin, name="busy-7", daemon=True)
    idle = threading.Thread(target=stop.wait, name="idle-7", daemon=True)
    busy.start()
    idle.start()
    try:
        name_os_threads()
        meter = system.ThreadCpuMeter()
        time.sleep(0.6)
        figures = meter.percent()
    finally:
        stop.set()
        busy.join()
        idle.join()
    assert figures is not None
    assert figures["busy-7"] > 20, figures  # spinning (it shares the GIL with nobody busy)
    assert "idle-7" not in figures  # 0 % is left out
    assert list(figures.values()) == sorted(figures.values(), reverse=True)  # the busiest first
    assert system.ThreadCpuMeter(tmp_path / "absent").percent() is None


def test_thread_figures_sum_ffmpeg_decoders_and_native_threads(tmp_path: Path) -> None:
    pid = os.getpid()
    tasks = tmp_path / "task"

    def task(tid: int, comm: str, ticks: int) -> None:
        (tasks / str(tid)).mkdir(parents=True, exist_ok=True)
        fields = ["S"] + ["0"] * 10 + [str(ticks), "0"] + ["0"] * 30  # utime is field 14 of stat
        (tasks / str(tid) / "stat").write_text(f"{tid} ({comm}) " + " ".join(fields) + "\n")

    # the main thread, a native pool thread (the process's name), two decoder threads, a stage
    threads = [(pid, "inspection-agen", 1), (1001, "inspection-agen", 20), (1002, "av:h264:df0", 30),
               (1003, "av:h264:df1", 30), (1004, "infer-1", 90)]  # fmt: skip
    for tid, comm, _ in threads:
        task(tid, comm, 0)
    meter = system.ThreadCpuMeter(tasks)
    tick = os.sysconf("SC_CLK_TCK")
    for tid, comm, used in threads:
        task(tid, comm, used * tick // 100)  # `used` hundredths of a second of CPU
    figures = meter.percent()
    assert figures is not None and list(figures) == ["infer-1", "ffmpeg-decoders", "native", "main"]
    assert figures["ffmpeg-decoders"] > figures["native"] > figures["main"] > 0
