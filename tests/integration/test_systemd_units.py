"""The shipped units pass ``systemd-analyze verify`` and meet their exposure targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import systemd_check as sc

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sc.available(), reason="systemd-analyze is not installed"),
]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sc.stage_units(tmp_path_factory.mktemp("units"))


def test_units_verify_clean(staged: Path) -> None:
    result = sc.verify(staged)
    assert result.clean, result.output


def test_agent_exposure_at_most_2_5(staged: Path) -> None:
    assert sc.exposure(staged / sc.AGENT_UNIT) <= 2.5


def test_collector_exposure_at_most_2_0(staged: Path) -> None:
    assert sc.exposure(staged / sc.COLLECTOR_UNIT) <= 2.0


def test_agent_unit_keeps_camera_devices_reachable() -> None:
    text = (sc.UNITS_DIR / sc.AGENT_UNIT).read_text()
    settings = {line.strip() for line in text.splitlines() if not line.startswith("#")}
    assert "DeviceAllow=char-video4linux rw" in settings
    assert "DeviceAllow=char-media rw" in settings
    assert "SupplementaryGroups=video" in settings
    assert "PrivateDevices=yes" not in settings
    assert "ProtectClock=yes" not in settings


def test_a_broken_unit_fails_verify(tmp_path: Path) -> None:
    staged = sc.stage_units(tmp_path)
    unit = staged / sc.COLLECTOR_UNIT
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    assert not sc.verify(staged).clean
