"""Triggers from every source (a GPIO edge, the Modbus coil, the OPC UA method, an MQTT command) go
through one bounded queue to one worker, which inspects one frame per trigger.

Triggers faster than the inspection rate are never queued without bound: ``pending`` may wait
behind the one in flight, later ones are refused and counted as missed. Each trigger keeps its
sequence number and the time of its edge, which the result is published with and the reject is
timed from.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import structlog

from agent.line.state import LineState
from agent.protocol.payloads import ResultPayload

log = structlog.get_logger(__name__)

PENDING = 2  # triggers that may wait behind the one being inspected


@dataclass(frozen=True, slots=True)
class TriggerStamp:
    seq: int  # from 1 since the agent started
    mono: float  # time.monotonic() of the edge (or of the request)
    ts_ms: int  # the same instant, epoch ms
    source: str  # gpio, modbus, opcua, sparkplug
    reply: Future[ResultPayload] = field(default_factory=Future, compare=False)


InspectFn = Callable[[TriggerStamp], ResultPayload]
ResultFn = Callable[[TriggerStamp, ResultPayload], None]


class Triggers:
    def __init__(
        self,
        inspect: InspectFn,
        *,
        state: LineState,
        on_result: ResultFn | None = None,
        pending: int = PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inspect = inspect
        self._state = state
        self._on_result = on_result
        self._queue: queue.Queue[TriggerStamp | None] = queue.Queue(pending)
        self._clock = clock
        self._seq = 0
        self._lock = threading.Lock()
        self._busy = False
        self.failed = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="line-trigger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(queue.Full):  # full: the worker sees the flag after its inspection
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(5.0)

    def fire(self, source: str, mono: float | None = None) -> TriggerStamp | None:
        """One trigger at ``mono`` (default now); None when refused because too many are waiting."""
        edge = self._clock() if mono is None else mono
        with self._lock:
            self._seq += 1
            stamp = TriggerStamp(self._seq, edge, int((time.time() - (self._clock() - edge)) * 1000), source)
            overlapped = self._busy or not self._queue.empty()
            try:
                self._queue.put_nowait(stamp)
            except queue.Full:
                self._state.add(triggers=1, missed=1, overlapped=1)
                stamp.reply.set_exception(TimeoutError("trigger refused: inspections are not keeping up"))
                log.warning("trigger_refused", seq=stamp.seq, source=source)
                return None
        self._state.add(triggers=1, overlapped=int(overlapped))
        return stamp

    def lost(self, edges: int) -> None:
        """Edges the kernel saw but could not hand us (its buffer overflowed)."""
        self._state.add(missed=edges)
        log.warning("trigger_edges_lost", edges=edges)

    def _run(self) -> None:
        while not self._stopped:
            stamp = self._queue.get()
            if stamp is None:
                return
            self._busy = True
            try:
                self._one(stamp)
            finally:
                self._busy = False

    def _one(self, stamp: TriggerStamp) -> None:
        try:
            payload = self._inspect(stamp)
        except Exception as exc:  # one failed inspection is counted; the next trigger is served
            self.failed += 1
            log.warning("triggered_inspection_failed", seq=stamp.seq, error=f"{type(exc).__name__}: {exc}")
            stamp.reply.set_exception(exc)
            return
        self._state.update(trigger_seq=stamp.seq)
        if self._on_result is not None:
            self._on_result(stamp, payload)
        stamp.reply.set_result(payload)
