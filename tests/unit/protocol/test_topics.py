"""Topics: the tree of one device, validated when built."""

from __future__ import annotations

import dataclasses

import pytest

from agent.config.schema import AgentConfig, CameraConfig, DeviceConfig, ModelConfig, MqttConfig
from agent.errors import ConfigError
from agent.protocol.topics import Topics, check_publish_topic


def test_every_topic_hangs_under_the_device_root() -> None:
    t = Topics("plant", "s1", "l2", "cam-3")
    assert t.root == "plant/s1/l2/cam-3"
    kinds = {"status": t.status, "result": t.result, "defect": t.defect, "sample": t.sample}
    kinds |= {"event": t.event, "health": t.health, "drift": t.drift}
    assert all(topic == f"{t.root}/{kind}" for kind, topic in kinds.items())
    assert t.cmd("reload-model") == "plant/s1/l2/cam-3/cmd/reload-model"
    assert t.cmd_filter == "plant/s1/l2/cam-3/cmd/+"


def test_a_multi_level_prefix_is_allowed() -> None:
    assert Topics("acme/inspection", "s", "l", "d").root == "acme/inspection/s/l/d"


@pytest.mark.parametrize("prefix", ["", "a/#", "a/+/b", "/a", "a/", "a//b", "a\0b"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="topic_prefix"):
        Topics(prefix, "s", "l", "d")


@pytest.mark.parametrize(
    ("field", "value"), [("site", "a/b"), ("line", "+"), ("device", ""), ("device", "d#")]
)
def test_levels_must_be_single_safe_topic_levels(field: str, value: str) -> None:
    args = {"prefix": "p", "site": "s", "line": "l", "device": "d", field: value}
    with pytest.raises(ConfigError, match=f"device.{field}"):
        Topics(**args)


def test_topics_are_immutable() -> None:
    t = Topics("p", "s", "l", "d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.device = "x"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "a b"])
def test_command_names_are_single_levels(name: str) -> None:
    with pytest.raises(ConfigError, match="command name"):
        Topics("p", "s", "l", "d").cmd(name)


def test_command_name_is_read_back_from_a_topic() -> None:
    t = Topics("p", "s", "l", "d")
    assert t.command_name("p/s/l/d/cmd/ping") == "ping"
    assert t.command_name("p/s/l/d/cmd/ping/reply") is None
    assert t.command_name("p/s/l/other/cmd/ping") is None


def test_from_config_uses_the_prefix_and_the_device_identity() -> None:
    cfg = AgentConfig(
        device=DeviceConfig(id="d9", site="s", line="l"),
        camera=CameraConfig(source="synthetic:"),
        model=ModelConfig(path="m"),
        mqtt=MqttConfig(topic_prefix="insp"),
    )
    assert Topics.from_config(cfg).root == cfg.topic_root == "insp/s/l/d9"


@pytest.mark.parametrize(("topic", "ok"), [("a/b", True), ("", False), ("a/+", False), ("a/#", False)])
def test_publish_topic_check(topic: str, ok: bool) -> None:
    assert (check_publish_topic(topic) is None) is ok
