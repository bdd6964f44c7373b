"""The topic tree of one device, as a small immutable value that validates itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config.schema import AgentConfig

_LEVEL = re.compile(r"^[A-Za-z0-9_.\-]+$")
_PREFIX_FORBIDDEN = ("#", "+", "\0")
_MAX_TOPIC_BYTES = 65535
DEFAULT_TEMPLATE = "{prefix}/{site}/{line}/{device}"
_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELDS = ("prefix", "site", "area", "line", "device")


@dataclass(frozen=True, slots=True)
class Topics:
    """``{prefix}/{site}/{line}/{device}/…``: every topic this device publishes or reads.

    Site, line and device are single topic levels (letters, digits, ``_ - .``) so that a
    subscriber can address one of them with ``+`` and an ACL can use ``%c``-style patterns.
    A plant with an ISA-95 / Unified Namespace sets ``template`` (``mqtt.topic_root``), e.g.
    ``{prefix}/{site}/{area}/{line}/{device}``; the collector's fleet filters assume the default.
    """

    prefix: str
    site: str
    line: str
    device: str
    area: str | None = None
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        if (
            not self.prefix
            or self.prefix.startswith("/")
            or self.prefix.endswith("/")
            or "//" in self.prefix
            or any(c in self.prefix for c in _PREFIX_FORBIDDEN)
        ):
            raise ConfigError(
                f"mqtt.topic_prefix: {self.prefix!r} must be non-empty, without '#', '+', "
                "an empty level or a leading/trailing '/'"
            )
        for name in ("site", "line", "device", "area"):
            value = getattr(self, name)
            if value is not None and not _LEVEL.match(value):
                raise ConfigError(f"device.{name}: {value!r} may only contain letters, digits, '_', '-', '.'")
        self._check_template()
        if len(self.root.encode()) > _MAX_TOPIC_BYTES - 64:
            raise ConfigError("mqtt.topic_prefix: the topic root is too long for MQTT")

    def _check_template(self) -> None:
        names = _FIELD.findall(self.template)
        if "device" not in names or set(names) - set(_FIELDS):
            raise ConfigError(
                f"mqtt.topic_root: {self.template!r} must contain {{device}} and only "
                "{prefix}, {site}, {area}, {line}, {device}"
            )
        if "area" in names and self.area is None:
            raise ConfigError("mqtt.topic_root uses {area}: set device.area")
        if any(c in self.template for c in _PREFIX_FORBIDDEN) or "//" in self.root or self.root.endswith("/"):
            raise ConfigError(
                f"mqtt.topic_root: {self.template!r} must not contain '#', '+' or an empty level"
            )

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> Topics:
        template = cfg.mqtt.topic_root or DEFAULT_TEMPLATE
        return cls(
            cfg.mqtt.topic_prefix, cfg.device.site, cfg.device.line, cfg.device.id, cfg.device.area, template
        )

    @property
    def root(self) -> str:
        if self.template == DEFAULT_TEMPLATE:
            return f"{self.prefix}/{self.site}/{self.line}/{self.device}"
        values = {"prefix": self.prefix, "site": self.site, "area": self.area or "", "line": self.line}
        return _FIELD.sub(lambda m: values.get(m.group(1), self.device), self.template)

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def result(self) -> str:
        return f"{self.root}/result"

    @property
    def defect(self) -> str:
        return f"{self.root}/defect"

    @property
    def sample(self) -> str:
        return f"{self.root}/sample"

    @property
    def event(self) -> str:
        return f"{self.root}/event"

    @property
    def health(self) -> str:
        return f"{self.root}/health"

    @property
    def drift(self) -> str:
        return f"{self.root}/drift"

    @property
    def shadow(self) -> str:
        return f"{self.root}/shadow"

    @property
    def cmd_filter(self) -> str:
        """The subscription for every command addressed to this device (one level: not replies)."""
        return f"{self.root}/cmd/+"

    def cmd(self, name: str) -> str:
        if not _LEVEL.match(name):
            raise ConfigError(f"command name {name!r} may only contain letters, digits, '_', '-', '.'")
        return f"{self.root}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """The command a topic addresses (``root/cmd/NAME``), or None for any other topic."""
        head = f"{self.root}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if _LEVEL.match(name) else None


def check_publish_topic(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None when it can."""
    if not topic:
        return "topic is empty"
    if any(c in topic for c in _PREFIX_FORBIDDEN):
        return f"topic {topic!r} contains a wildcard or NUL"
    if len(topic.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES:
        return "topic is longer than 65535 bytes"
    return None


def fleet_filter(prefix: str, kind: str, *, site: str = "+", share_group: str | None = None) -> str:
    """The subscription for every device's ``kind`` topic under ``prefix`` (one site or ``+`` for all).

    With ``share_group`` it is an MQTT 5 shared subscription: the group's members split the messages.
    """
    share = f"$share/{share_group}/" if share_group else ""
    return f"{share}{prefix}/{site}/+/+/{kind}"


def split_device_topic(prefix: str, topic: str) -> tuple[str, str, str, str] | None:
    """(site, line, device, kind) of ``{prefix}/{site}/{line}/{device}/{kind}``; None for any other topic."""
    head = f"{prefix}/"
    if not topic.startswith(head):
        return None
    levels = topic[len(head) :].split("/")
    if len(levels) != 4:
        return None
    site, line, device, kind = levels
    return site, line, device, kind
