"""The GPIO drop-in opens exactly the GPIO chips and nothing else (the unit's policy stays closed)."""

from __future__ import annotations

from tests.support.paths import REPO


def test_the_drop_in_allows_only_the_gpio_chips() -> None:
    text = (REPO / "systemd" / "inspection-agent-gpio.conf").read_text()
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == ["[Service]", "DeviceAllow=char-gpiochip rw", "SupplementaryGroups=gpio"]
