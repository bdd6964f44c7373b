"""The line integration as one frame observer: it keeps :class:`LineState` from every result and runs the
configured parts (digital I/O, Modbus, OPC UA, Sparkplug B, Home Assistant discovery).

Each part is built here only when its section is configured, and builds lazily imports its library,
so a missing extra fails the agent at start with the extra to install. Everything the parts need
from the agent comes in as a few callables (:class:`Hooks`), never the agent itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from agent.capture.base import Frame
from agent.config.schema import AgentConfig
from agent.errors import CommandError
from agent.events import EventSink
from agent.line.chip import Chip
from agent.line.io import ChipFactory, LineIO
from agent.line.state import LineState
from agent.line.trigger import Triggers, TriggerStamp
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.payloads import ResultPayload, TriggerTag
from agent.protocol.topics import Topics
from agent.publish import Sink

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 5.0
COMMAND_SOURCES = frozenset({"mqtt", "console"})


class Part(Protocol):
    name: str  # its key under the health report's line_io.clients

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def clients(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the line needs from the agent (the composition root passes lambdas)."""

    # Inspect the first frame delivered after ``after`` (monotonic) and publish it with ``tag``.
    trigger: Callable[[float, float, float, TriggerTag], ResultPayload]  # (timeout, edge, settle_s, tag)
    agent_state: Callable[[], str]  # starting / running / degraded / fault
    labels: Callable[[], Sequence[str]]
    model_version: Callable[[], str]


def open_gpiod(name: str) -> Chip:
    from agent.line.gpiod_chip import GpiodChip

    return GpiodChip(name)


class Line(FrameObserver):
    name = "line"

    def __init__(
        self,
        cfg: AgentConfig,
        hooks: Hooks,
        *,
        sink: Sink,
        topics: Topics,
        emit: EventSink,
        chips: ChipFactory | None = None,
    ) -> None:
        self.cfg = cfg
        self.hooks = hooks
        self.state = LineState()
        self.io = (
            LineIO(
                cfg.io, chips=chips or open_gpiod, state=self.state, emit=emit, agent_state=hooks.agent_state
            )
            if cfg.io.enabled  # open_gpiod looked up here, so a test can put the in-memory chip there
            else None
        )
        self.triggers = Triggers(
            self._inspect, state=self.state, on_result=self.io.on_result if self.io is not None else None
        )
        trig = cfg.io.trigger
        self._timeout = trig.timeout_s if trig is not None else DEFAULT_TIMEOUT_S
        settle_ms = (
            trig.settle_ms if trig is not None and trig.settle_ms is not None else 1000.0 / cfg.camera.fps
        )
        self._settle_s = settle_ms / 1000.0
        self.parts: list[Part] = _build_parts(cfg, self, sink=sink, topics=topics)
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start every part; one that cannot start (a busy port, a held GPIO line) raises LineError."""
        self.state.update(model_version=self.hooks.model_version(), state=self.hooks.agent_state())
        self.triggers.start()
        if self.io is not None:
            self.io.start(self.triggers)
        for part in self.parts:
            part.start()

    def stop(self) -> None:
        """Idempotent: outputs off, servers closed, GPIO lines released."""
        if self._stopped:
            return
        self._stopped = True
        self.state.update(state="stopped")
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):  # every part gets its chance to stop
                part.stop()
        self.triggers.stop()
        if self.io is not None:
            self.io.stop()

    def fire(self, source: str) -> TriggerStamp | None:
        return self.triggers.fire(source)

    def command(self, timeout: float, source: str = "mqtt") -> ResultPayload:
        """A trigger asked by a command (MQTT ``cmd/trigger``, the console): the same queue as every
        other source, so it is counted missed/overlapped like them and its result carries its tag."""
        stamp = self.triggers.fire(source)
        if stamp is None:
            raise CommandError("trigger refused: inspections are not keeping up (counted as missed)")
        return stamp.reply.result(timeout)

    def _inspect(self, stamp: TriggerStamp) -> ResultPayload:
        if self.cfg.camera.mode != "trigger":
            raise CommandError("the camera is not in trigger mode (camera.mode: trigger)")
        tag = TriggerTag(seq=stamp.seq, ts=stamp.ts_ms, source=stamp.source, exposure_delay_ms=0.0)
        # A command has no part in front of the camera to settle: only frames from before it are stale.
        settle = 0.0 if stamp.source in COMMAND_SOURCES else self._settle_s
        return self.hooks.trigger(self._timeout, stamp.mono, settle, tag)

    # -- observer hooks -----------------------------------------------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        labels = self.hooks.labels()
        s = self.state.snapshot()
        self.state.update(
            parts=s.parts + 1,
            defects=s.defects + int(result.is_defect),
            defect=result.is_defect,
            label=result.label,
            label_index=labels.index(result.label) if result.label in labels else 0xFFFF,
            score=result.score,
            latency_ms=payload["latency_ms"]["total"],
            model_version=payload["model"]["version"],
        )

    def tick(self) -> None:
        self.state.update(state=self.hooks.agent_state())
        if self.io is not None:
            self.io.tick()

    def health(self) -> dict[str, Any]:
        """The ``line_io`` section of the health report (agent/protocol/schemas/health.schema.json)."""
        s = self.state.snapshot()
        io = self.io.health() if self.io is not None else {}
        jitter = io.get("reject_jitter") or {}
        return {
            "state": s.state,
            "ready": io.get("ready"),
            "fault": io.get("fault"),
            "triggers": {
                "received": s.triggers,
                "missed": s.missed,
                "overlapped": s.overlapped,
                "failed": self.triggers.failed,
                "bounced": io.get("bounced", 0),
            },
            "rejects": {"fired": s.rejects, "late": s.late_rejects},
            "jitter_ms": {k: jitter.get(k) for k in ("p50_ms", "p99_ms", "max_ms")}
            | {"count": jitter.get("count", 0)},
            "clients": {part.name: part.clients() for part in self.parts},
        }


def wanted(cfg: AgentConfig) -> bool:
    """Whether this config uses any part of the line integration (trigger mode alone uses its queue:
    MQTT and console triggers go through it)."""
    return (
        cfg.camera.mode == "trigger"
        or cfg.io.enabled
        or cfg.modbus.listen is not None
        or cfg.opcua.listen is not None
        or cfg.sparkplug.enabled
        or cfg.homeassistant.enabled
    )


def build_lines(
    cfg: AgentConfig,
    hooks: Hooks,
    *,
    sink: Sink,
    topics: Topics,
    emit: EventSink,
    chips: ChipFactory | None = None,
) -> list[Line]:
    """[] when the config uses no part of the line (the composition root then has nothing to wire)."""
    return [Line(cfg, hooks, sink=sink, topics=topics, emit=emit, chips=chips)] if wanted(cfg) else []


def _build_parts(cfg: AgentConfig, line: Line, *, sink: Sink, topics: Topics) -> list[Part]:
    """The protocol servers and publishers this config asks for (each import is lazy)."""
    parts: list[Part] = []
    if cfg.modbus.listen is not None:
        from agent.line.modbus import ModbusServer

        parts.append(ModbusServer(cfg.modbus, state=line.state, fire=line.fire))
    if cfg.opcua.listen is not None:
        from agent.line.opcua import OpcuaServer

        parts.append(
            OpcuaServer(cfg.opcua, cfg.base_dir, device=cfg.device.id, state=line.state, fire=line.fire)
        )
    if cfg.sparkplug.enabled:
        from agent.line.sparkplug import SparkplugNode

        parts.append(SparkplugNode(cfg, state=line.state, fire=line.fire))
    if cfg.homeassistant.enabled:
        from agent.line.homeassistant import Discovery

        parts.append(Discovery(cfg, sink=sink, topics=topics))
    return parts
