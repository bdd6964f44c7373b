"""The libgpiod v2 chip (Raspberry Pi, Jetson): ``gpiod`` from the ``io`` extra, imported lazily."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from agent.errors import LineError
from agent.line import require
from agent.line.chip import EdgeEvent, EdgeKind


class GpiodChip:
    """One ``/dev/gpiochipN`` through one libgpiod line request (every line of ours on this chip).

    Edges carry the kernel's CLOCK_MONOTONIC timestamp, the clock of ``time.monotonic()``, so
    the trigger's time is when the photo-eye switched, not when Python got round to reading it.
    """

    def __init__(self, name: str) -> None:
        self._gpiod: Any = require("gpiod", "io (GPIO)")
        self.name = name
        self.path = name if name.startswith("/dev/") else f"/dev/{name}"
        self._req: Any = None

    def request(self, inputs: Mapping[int, EdgeKind], outputs: Mapping[int, bool], consumer: str) -> None:
        gpiod = self._gpiod
        line = gpiod.line
        config: dict[Any, Any] = {}
        for offset, edge in inputs.items():
            config[offset] = gpiod.LineSettings(
                direction=line.Direction.INPUT,
                edge_detection=line.Edge.RISING if edge == "rising" else line.Edge.FALLING,
                event_clock=line.Clock.MONOTONIC,
                debounce_period=timedelta(0),  # debounced in agent.line.timing: same code on every chip
            )
        for offset, active_low in outputs.items():
            config[offset] = gpiod.LineSettings(
                direction=line.Direction.OUTPUT, active_low=active_low, output_value=line.Value.INACTIVE
            )
        try:
            self._req = gpiod.request_lines(self.path, consumer=consumer, config=config)
        except (OSError, ValueError) as exc:
            raise LineError(f"io: cannot request lines {sorted(config)} on {self.path}: {exc}") from exc

    def wait_edges(self, timeout: float) -> list[EdgeEvent]:
        req = self._req
        if req is None or not req.wait_edge_events(timedelta(seconds=timeout)):
            return []
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        return [
            EdgeEvent(e.line_offset, e.event_type == rising, e.timestamp_ns / 1e9, e.line_seqno)
            for e in req.read_edge_events()
        ]

    def set(self, line: int, active: bool) -> None:
        value = self._gpiod.line.Value
        self._req.set_value(line, value.ACTIVE if active else value.INACTIVE)

    def close(self) -> None:
        if self._req is not None:
            self._req.release()
            self._req = None
