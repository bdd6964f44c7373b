"""Digital I/O on the line: the part-present trigger input, the reject gate, and ready/fault outputs.

The chip is behind :class:`agent.line.chip.Chip` (libgpiod on a device, :class:`MemoryChip` in
tests); everything here is the same code on both. See docs/line.md for the wiring and timings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from agent import events
from agent.config.line import IoConfig, OutputLineConfig
from agent.events import EventSink
from agent.line.chip import Chip, EdgeKind
from agent.line.state import LineState
from agent.line.timing import Debouncer, PulseScheduler
from agent.line.trigger import Triggers, TriggerStamp
from agent.protocol.payloads import ResultPayload

log = structlog.get_logger(__name__)

ChipFactory = Callable[[str], Chip]


def _chip_name(name: str) -> str:
    return name.removeprefix("/dev/")


class LineIO:
    """Owns the chips: reads trigger edges into :class:`Triggers`, fires reject pulses from results."""

    def __init__(
        self,
        cfg: IoConfig,
        *,
        chips: ChipFactory,
        state: LineState,
        emit: EventSink,
        agent_state: Callable[[], str],
    ) -> None:
        self.cfg = cfg
        self._open = chips
        self._state = state
        self._emit = emit
        self._agent_state = agent_state
        self.chips: dict[str, Chip] = {}
        self._debounce = Debouncer((cfg.trigger.debounce_ms if cfg.trigger else 0.0) / 1000.0)
        self._pulses = PulseScheduler(self._set_line)
        self._stop = threading.Event()
        self._triggers: Triggers | None = None
        self._last_seq = 0
        self._thread: threading.Thread | None = None
        self._outputs: dict[int, str] = {}  # line offset -> chip name, for the pulse scheduler
        self.interlock: dict[str, bool | None] = {"ready": None, "fault": None}  # as last set

    # -- lifecycle --------------------------------------------------------------------
    def start(self, triggers: Triggers) -> None:
        """Request every configured line (a busy line or missing chip raises LineError) and start."""
        self._triggers = triggers
        wanted: dict[str, tuple[dict[int, EdgeKind], dict[int, bool]]] = {}
        t = self.cfg.trigger
        if t is not None:
            wanted.setdefault(_chip_name(t.chip), ({}, {}))[0][t.line] = t.edge
        for out in (self.cfg.reject, self.cfg.ready, self.cfg.fault):
            if out is not None:
                wanted.setdefault(_chip_name(out.chip), ({}, {}))[1][out.line] = out.active_low
                self._outputs[out.line] = _chip_name(out.chip)
        for name, (inputs, outputs) in wanted.items():
            chip = self._open(name)
            self.chips[name] = chip
            chip.request(inputs, outputs, self.cfg.consumer)
        self._pulses.start()
        if t is not None:
            self._thread = threading.Thread(target=self._read_edges, name="line-edges", daemon=True)
            self._thread.start()
        self.tick()

    def stop(self) -> None:
        """Outputs go inactive (no reject left on, ready off, fault on) before the lines are released."""
        self._stop.set()
        self._pulses.stop()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.cfg.reject is not None:
            self._set(self.cfg.reject, False)
        self._set_interlock(ready=False, fault=True)
        for chip in self.chips.values():
            chip.close()

    # -- trigger input ----------------------------------------------------------------
    def _read_edges(self) -> None:
        t = self.cfg.trigger
        assert t is not None and self._triggers is not None
        chip = self.chips[_chip_name(t.chip)]
        while not self._stop.is_set():
            for edge in chip.wait_edges(0.2):
                if edge.line != t.line:
                    continue
                if self._last_seq and edge.seq > self._last_seq + 1:
                    self._triggers.lost(edge.seq - self._last_seq - 1)
                self._last_seq = edge.seq
                if self._debounce.accept(edge.mono):
                    self._triggers.fire("gpio", edge.mono)

    @property
    def bounced(self) -> int:
        return self._debounce.bounced

    # -- reject output ----------------------------------------------------------------
    def on_result(self, stamp: TriggerStamp, payload: ResultPayload) -> None:
        """Runs on the trigger worker once a triggered part's result is known."""
        r = self.cfg.reject
        if r is None or not self._state.snapshot().reject_enabled or not self._wants_reject(payload):
            return
        at = stamp.mono + r.delay_ms / 1000.0
        if self._pulses.pulse(r.line, at, r.pulse_ms / 1000.0, r.late_margin_ms / 1000.0):
            self._state.add(rejects=1)
            return
        self._state.add(late_rejects=1)
        log.warning("reject_late", trigger=stamp.seq, label=payload["label"], delay_ms=r.delay_ms)
        self._emit(
            events.line_fault(
                "reject_late", f"the result of trigger {stamp.seq} came after its reject window", stamp.seq
            )
        )

    def _wants_reject(self, payload: ResultPayload) -> bool:
        on = self.cfg.reject.on if self.cfg.reject else []
        return ("defect" in on and payload["defect"]) or payload["label"] in on

    # -- ready / fault ------------------------------------------------------------------
    def tick(self) -> None:
        state = self._agent_state()
        self._set_interlock(ready=state == "running", fault=state not in ("running", "degraded"))

    def _set_interlock(self, *, ready: bool, fault: bool) -> None:
        if self.cfg.ready is not None:
            self._set(self.cfg.ready, ready)
            self.interlock["ready"] = ready
        if self.cfg.fault is not None:
            self._set(self.cfg.fault, fault)
            self.interlock["fault"] = fault

    def _set(self, out: OutputLineConfig | Any, active: bool) -> None:
        chip = self.chips.get(_chip_name(out.chip))
        if chip is not None:
            chip.set(out.line, active)

    def _set_line(self, line: int, active: bool) -> None:
        self.chips[self._outputs[line]].set(line, active)

    def health(self) -> dict[str, Any]:
        """Bounced edges, reject jitter and the interlock outputs as last set (None: not wired)."""
        return {"bounced": self.bounced, "reject_jitter": self._pulses.jitter.summary(), **self.interlock}
