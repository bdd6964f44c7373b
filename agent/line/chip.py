"""The GPIO chip interface, and the one in-memory chip used where no hardware can exist (tests, bench).

A chip is requested once with its inputs (edge detection) and outputs, like libgpiod v2's
``request_lines``; edges come back with the kernel's monotonic timestamp and per-line sequence
number, so the timing logic above it (debounce, reject delay, late detection) is the same code
whatever the chip, and a gap in sequence numbers tells that the kernel lost edges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.errors import LineError

EdgeKind = Literal["rising", "falling"]


@dataclass(frozen=True, slots=True)
class EdgeEvent:
    line: int
    rising: bool
    mono: float  # time.monotonic() seconds of the edge (the kernel's CLOCK_MONOTONIC timestamp)
    seq: int  # per-line sequence number from 1: a gap means edges were lost before we read them


class Chip(Protocol):
    """One GPIO chip (``gpiochip0``), requested once with every line this agent uses on it."""

    name: str

    def request(self, inputs: Mapping[int, EdgeKind], outputs: Mapping[int, bool], consumer: str) -> None:
        """Take the lines: inputs with their edge, outputs with active_low; raise LineError when busy."""
        ...

    def wait_edges(self, timeout: float) -> list[EdgeEvent]:
        """The edges seen since the last call, waiting up to ``timeout`` s for one; [] on timeout."""
        ...

    def set(self, line: int, active: bool) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Input:
    edge: EdgeKind
    level: bool = False
    seq: int = 0


@dataclass(slots=True)
class MemoryChip:
    """An honest chip in memory: ``drive`` changes an input's level (raising an edge when it matches the
    requested edge, with the next sequence number), outputs keep every change with its time.

    ``capacity`` is the kernel's edge buffer: edges beyond it are lost (their sequence numbers are
    still used, as the kernel's are), which is how a reader that falls behind sees lost edges.
    """

    name: str = "gpiochip0"
    capacity: int = 16
    inputs: dict[int, _Input] = field(default_factory=dict)
    outputs: dict[int, bool] = field(default_factory=dict)  # line -> active_low
    history: dict[int, list[tuple[float, bool]]] = field(default_factory=dict)
    closed: bool = False
    _events: list[EdgeEvent] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def request(self, inputs: Mapping[int, EdgeKind], outputs: Mapping[int, bool], consumer: str) -> None:
        if self.inputs or self.outputs:
            raise LineError(f"{self.name}: lines already requested")
        self.inputs = {line: _Input(edge) for line, edge in inputs.items()}
        self.outputs = dict(outputs)
        self.history = {line: [] for line in outputs}

    def drive(self, line: int, level: bool, mono: float | None = None) -> None:
        """The outside world sets an input to ``level`` (at ``mono``, default now)."""
        wire = self.inputs[line]
        if level == wire.level:
            return
        wire.level = level
        if level != (wire.edge == "rising"):
            return
        wire.seq += 1
        event = EdgeEvent(line, level, time.monotonic() if mono is None else mono, wire.seq)
        with self._cond:
            if len(self._events) < self.capacity:
                self._events.append(event)
            self._cond.notify_all()

    def pulse(self, line: int, width_s: float = 0.0) -> None:
        """One clean part-present pulse on an input."""
        self.drive(line, True)
        if width_s:
            time.sleep(width_s)
        self.drive(line, False)

    def wait_edges(self, timeout: float) -> list[EdgeEvent]:
        with self._cond:
            if not self._events and not self.closed:
                self._cond.wait(timeout)
            events, self._events = self._events, []
        return events

    def set(self, line: int, active: bool) -> None:
        if line not in self.outputs:
            raise LineError(f"{self.name}: line {line} is not an output")
        history = self.history[line]
        if not history or history[-1][1] != active:
            history.append((time.monotonic(), active))

    def level(self, line: int) -> bool:
        """An output's logical level (active or not) now."""
        history = self.history[line]
        return bool(history) and history[-1][1]

    def pulses(self, line: int) -> list[tuple[float, float]]:
        """(start, end) of every completed pulse on an output."""
        changes = self.history[line]
        starts = [t for t, on in changes if on]
        ends = [t for t, on in changes if not on and t >= (starts[0] if starts else 0.0)]
        return list(zip(starts, ends, strict=False))

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
