"""Line config sections and the topic template: valid ones load, invalid ones say what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import load_config
from agent.errors import ConfigError, LineError
from agent.protocol.topics import Topics
from tests.support.agentproc import write_config


def _load(tmp_path: Path, **sections: Any) -> Any:
    return load_config(write_config(tmp_path, port=1883, prefix="p", source="synthetic:1", **sections))


def test_a_full_line_config_loads(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path, camera={"mode": "trigger"},
        io={"trigger": {"line": 17}, "reject": {"line": 27, "delay_ms": 350}, "ready": {"line": 22}},
        modbus={"listen": "0.0.0.0:5020"}, sparkplug={"enabled": True},
    )  # fmt: skip
    assert cfg.io.enabled and cfg.io.reject.on == ["defect"] and cfg.modbus.unit_id == 1


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"io": {"trigger": {"line": 17}}}, "io.trigger: a trigger input needs camera.mode: trigger"),
        (
            {"io": {"reject": {"line": 5}, "ready": {"line": 5}}},
            "ready.line: line 5 on gpiochip0 is also io.reject",
        ),
        ({"io": {"reject": {"chip": "spi0"}}}, "io.reject.chip"),
        ({"io": {"reject": {"pulse_ms": 0}}}, "io.reject.pulse_ms"),
        ({"modbus": {"listen": "5020"}}, "modbus.listen"),
        ({"modbus": {"listen": "0.0.0.0:5020", "unit_id": 300}}, "modbus.unit_id"),
        (
            {"opcua": {"listen": "0.0.0.0:4840", "certificate": "c.der"}},
            "certificate and private_key go together",
        ),
        (
            {"opcua": {"listen": "0.0.0.0:4840", "trusted_clients": "ca"}},
            "opcua.trusted_clients: needs certificate",
        ),
        ({"sparkplug": {"enabled": True, "group_id": "a/b"}}, "sparkplug.group_id"),
        ({"mqtt": {"topic_root": "{prefix}/{plant}/{device}"}}, "unknown field(s) ['plant']"),
        ({"mqtt": {"topic_root": "{prefix}/{site}"}}, "must contain {device}"),
        ({"mqtt": {"topic_root": "{prefix}/{site}/{area}/{line}/{device}"}}, "set device.area"),
        ({"io": {"bogus": 1}}, "io.bogus"),
    ],
)
def test_bad_line_config_is_refused_with_the_key(
    tmp_path: Path, sections: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, **sections)
    assert needle in str(err.value)


def test_the_isa95_topic_template_shapes_every_topic(tmp_path: Path) -> None:
    path = write_config(tmp_path, port=1883, prefix="p", source="synthetic:1")
    doc = yaml.safe_load(path.read_text())
    doc["device"]["area"] = "packing"
    doc["mqtt"]["topic_root"] = "{prefix}/{site}/{area}/{line}/{device}"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    topics = Topics.from_config(cfg)
    assert topics.result == "p/plant-a/packing/line-3/cam-01/result"
    assert topics.command_name(topics.cmd("trigger")) == "trigger" and cfg.topic_root == topics.root
    assert Topics.from_config(_load(tmp_path / "plain")).root == "p/plant-a/line-3/cam-01"


def test_a_missing_gpio_chip_fails_at_start_with_the_path(tmp_path: Path) -> None:
    pytest.importorskip("gpiod")
    from agent.line.gpiod_chip import GpiodChip

    chip = GpiodChip("gpiochip97")
    with pytest.raises(LineError, match="/dev/gpiochip97"):
        chip.request({17: "rising"}, {27: False}, "test")


def test_a_missing_extra_names_the_extra_to_install() -> None:
    from agent.line import require

    with pytest.raises(LineError, match=r"inspection-agent\[plc\]"):
        require("asyncua.no_such_module", "opcua")
