"""Configuration sections of the line integration (agent/line, docs/line.md): digital I/O, Modbus TCP,
OPC UA, Sparkplug B and Home Assistant discovery.

Split out of :mod:`agent.config.schema` (which re-exports them) to keep each module small; same
rules: frozen dataclasses, unknown keys rejected, cross-field rules in ``_check``. Every part is off
unless its section says otherwise, so a device that is not wired to a line runs none of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Problems = list[tuple[str, str]]
_CHIP = re.compile(r"^(gpiochip\d+|/dev/gpiochip\d+)$")
_SPARKPLUG_ID = re.compile(r"^[^/#+]+$")


def _check_line(chip: str, line: int) -> Problems:
    problems: Problems = []
    if not _CHIP.match(chip):
        problems.append(("chip", f"{chip!r} must be gpiochipN or /dev/gpiochipN"))
    if not 0 <= line < 1024:
        problems.append(("line", "must be a line offset between 0 and 1023"))
    return problems


def _check_listen(listen: str) -> Problems:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        return [("listen", f"{listen!r} must be HOST:PORT, e.g. 0.0.0.0:5020")]
    return []


@dataclass(frozen=True, slots=True)
class TriggerInputConfig:
    """``io.trigger``: the part-present input (a photo-eye) that starts one inspection per edge."""

    chip: str = "gpiochip0"
    line: int = 17
    edge: Literal["rising", "falling"] = "rising"
    debounce_ms: float = 5.0  # edges closer than this to the last accepted one are contact bounce
    # A frame delivered this long after the edge was exposed after it (a buffered frame is delivered
    # at once). None: one frame period (1000 / camera.fps).
    settle_ms: float | None = None
    timeout_s: float = 2.0  # the longest one triggered inspection may take

    def _check(self) -> Problems:
        problems = _check_line(self.chip, self.line)
        if not 0 <= self.debounce_ms <= 1000:
            problems.append(("debounce_ms", "must be between 0 and 1000"))
        if self.settle_ms is not None and not 0 <= self.settle_ms <= 1000:
            problems.append(("settle_ms", "must be between 0 and 1000"))
        if not 0 < self.timeout_s <= 60:
            problems.append(("timeout_s", "must be in (0, 60]"))
        return problems


@dataclass(frozen=True, slots=True)
class OutputLineConfig:
    """``io.ready`` / ``io.fault``: one output line for the PLC's interlock."""

    chip: str = "gpiochip0"
    line: int = 22
    active_low: bool = False

    def _check(self) -> Problems:
        return _check_line(self.chip, self.line)


@dataclass(frozen=True, slots=True)
class RejectConfig:
    """``io.reject``: a pulse on the reject gate ``delay_ms`` after the trigger of a defective part."""

    chip: str = "gpiochip0"
    line: int = 27
    delay_ms: float = 350.0
    pulse_ms: float = 80.0
    # What is rejected: "defect" (the model's defect decision) and/or label names.
    on: list[str] = field(default_factory=lambda: ["defect"])
    # A result ready later than delay_ms + this is not fired (it would hit the next part).
    late_margin_ms: float = 5.0
    active_low: bool = False

    def _check(self) -> Problems:
        problems = _check_line(self.chip, self.line)
        if not 0 <= self.delay_ms <= 60_000:
            problems.append(("delay_ms", "must be between 0 and 60000"))
        if not 1 <= self.pulse_ms <= 10_000:
            problems.append(("pulse_ms", "must be between 1 and 10000"))
        if not self.on:
            problems.append(("on", "name at least one of 'defect' or a label"))
        if not 0 <= self.late_margin_ms <= 1000:
            problems.append(("late_margin_ms", "must be between 0 and 1000"))
        return problems


@dataclass(frozen=True, slots=True)
class IoConfig:
    """``io:`` — digital I/O through libgpiod v2 (extra ``io``); every line optional."""

    trigger: TriggerInputConfig | None = None
    reject: RejectConfig | None = None
    ready: OutputLineConfig | None = None  # on while the agent is healthy
    fault: OutputLineConfig | None = None  # on while the agent is not inspecting
    consumer: str = "inspection-agent"  # the name other tools (gpioinfo) show for our lines

    @property
    def enabled(self) -> bool:
        return any(x is not None for x in (self.trigger, self.reject, self.ready, self.fault))

    def _check(self) -> Problems:
        used: dict[tuple[str, int], str] = {}
        problems: Problems = []
        for name in ("trigger", "reject", "ready", "fault"):
            part = getattr(self, name)
            if part is None:
                continue
            key = (part.chip.removeprefix("/dev/"), part.line)
            if key in used:
                problems.append((f"{name}.line", f"line {part.line} on {part.chip} is also io.{used[key]}"))
            used[key] = name
        return problems


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """``modbus:`` — a Modbus TCP server with the register map of docs/line.md (extra ``plc``)."""

    listen: str | None = None  # HOST:PORT, e.g. "0.0.0.0:5020"; None: off; port 0 picks a free one
    unit_id: int = 1  # 0 answers every unit id

    def _check(self) -> Problems:
        problems = _check_listen(self.listen) if self.listen is not None else []
        if not 0 <= self.unit_id <= 247:
            problems.append(("unit_id", "must be between 0 and 247"))
        return problems


@dataclass(frozen=True, slots=True)
class OpcuaConfig:
    """``opcua:`` — an OPC UA server with Objects/Inspection/{device} and a Trigger method (extra ``plc``)."""

    listen: str | None = None  # HOST:PORT, e.g. "0.0.0.0:4840"; None: off
    namespace: str = "urn:inspection-agent"
    # Both set: only Basic256Sha256 (Sign and SignAndEncrypt) is offered, with this certificate.
    certificate: str | None = None  # PEM or DER
    private_key: str | None = None  # PEM
    # A directory of the client certificates (DER or PEM) allowed a session, re-read when it
    # changes; None: any client certificate on a secured channel.
    trusted_clients: str | None = None

    def _check(self) -> Problems:
        problems = _check_listen(self.listen) if self.listen is not None else []
        if (self.certificate is None) != (self.private_key is None):
            problems.append(("certificate", "certificate and private_key go together"))
        if self.trusted_clients is not None and self.certificate is None:
            problems.append(("trusted_clients", "needs certificate and private_key (a secured endpoint)"))
        return problems


@dataclass(frozen=True, slots=True)
class SparkplugConfig:
    """``sparkplug:`` — Sparkplug B births, deaths and data on the same broker (extra ``sparkplug``)."""

    enabled: bool = False
    group_id: str | None = None  # default: device.site
    edge_node_id: str | None = None  # default: device.line
    device_id: str | None = None  # default: device.id

    def _check(self) -> Problems:
        return [
            (name, "may not contain '/', '#' or '+' (it is a Sparkplug topic level)")
            for name in ("group_id", "edge_node_id", "device_id")
            if getattr(self, name) is not None and not _SPARKPLUG_ID.match(getattr(self, name))
        ]


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    """``homeassistant:`` — MQTT discovery documents so Home Assistant shows the device by itself."""

    enabled: bool = False
    discovery_prefix: str = "homeassistant"

    def _check(self) -> Problems:
        if not _SPARKPLUG_ID.match(self.discovery_prefix):
            return [("discovery_prefix", "must be one topic level without '/', '#' or '+'")]
        return []
