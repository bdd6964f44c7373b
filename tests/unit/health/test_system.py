from __future__ import annotations

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
