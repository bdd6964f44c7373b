"""The inference thread first, when it is the line's bottleneck and the cores have room (issue 20).

On a small device every thread of the agent shares two to four cores with FFmpeg's decoder
threads. When the model is the slowest stage, the line's rate is the inference thread's rate,
and every moment that thread waits for a core (a decoder thread, the publisher, paho or the
outbox writer got there first) is lost for good, while the capture side has time to spare. With
a YOLOv8n-class int8 detector on 2 cores the inference thread was runnable but not running for
14 % of the time (``/proc/<pid>/task/<tid>/schedstat``) although a quarter of the machine sat
idle. Lowering the other threads' priority by a few nice steps measured +9 % frames per second
there, +3 to +10 % for a MobileNetV2-class ONNX model, and -3 % when the capture side needs more
CPU than the invoke (a MobileNetV2-class TFLite model behind a noisy H.264 decode): the decision
therefore follows the measured CPU use, not the model's size.

:class:`Favour` is fed by the inference thread after each invoke. Over windows of ``window_s``
it compares the CPU time of that thread with the CPU time of the rest of the process (FFmpeg's
threads included). After ``windows`` windows in a row in which the inference thread was busy
at least ``busy`` of the wall time and the rest of the process needed at most ``ratio`` of its
CPU, every other thread of the process gets ``nice`` more (Linux nice is per thread, and a
thread starts with its creator's value, so decoder threads opened later follow the capture
thread), except the line's timing threads (photo-eye edges, reject pulses, triggers), whose
latency a PLC or a reject gate depends on. It happens once: an unprivileged process cannot give
a thread its priority back, and a later lighter model only means the inference thread sleeps
more, which hands the cores to the others anyway. Off with ``inference.priority: equal``, on
other systems than Linux, and with ``model.threads`` above 1 (the runtime's own worker threads
cannot be told from the others).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_TASKS = Path("/proc/self/task")


# Threads whose timing the line depends on keep their priority: the photo-eye edge reader
# (edge timestamps), the reject pulse scheduler and the trigger dispatcher (agent/line/).
TIMING_THREADS = ("line-",)


def lower_others(nice: int, keep: int) -> int:
    """Add ``nice`` to the nice value of every thread of this process except ``keep`` (a native
    thread id) and the line's timing threads (:data:`TIMING_THREADS`, by Python thread name);
    returns how many were lowered. Threads that end meanwhile are passed over."""
    spared = {keep} | {
        t.native_id for t in threading.enumerate() if t.name.startswith(TIMING_THREADS) and t.native_id
    }
    lowered = 0
    for entry in os.scandir(_TASKS):
        tid = int(entry.name)
        if tid in spared:
            continue
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
        except (ProcessLookupError, PermissionError):
            continue
        lowered += 1
    return lowered


class Favour:
    """Watches the CPU split between the inference thread and the rest; lowers the rest once."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        nice: int = 5,
        busy: float = 0.7,
        ratio: float = 0.9,
        window_s: float = 1.0,
        windows: int = 3,
        now: Callable[[], float] = time.monotonic,
        thread_time: Callable[[], float] = time.thread_time,
        process_time: Callable[[], float] = time.process_time,
        apply: Callable[[int, int], int] = lower_others,
    ) -> None:
        self.enabled = enabled and _TASKS.is_dir()
        self.nice, self.busy, self.ratio = nice, busy, ratio
        self.window_s, self.windows = window_s, windows
        self._now, self._thread_time, self._process_time, self._apply = now, thread_time, process_time, apply
        self.applied = False
        self.state = "watching" if self.enabled else "equal"  # then "favoured", or "refused" (EPERM)
        self._streak = 0
        self._frames = 0
        self._start: tuple[float, float, float] | None = None
        self.last: dict[str, float] = {}  # the last window's figures, for the log and tests

    def note(self) -> None:
        """One frame invoked; called by the inference thread only."""
        if not self.enabled or self.applied:
            return
        now = self._now()
        if self._start is None:
            self._start, self._frames = (now, self._thread_time(), self._process_time()), 0
            return
        self._frames += 1
        wall = now - self._start[0]
        if wall < self.window_s:
            return  # the CPU clocks (system calls) are read at the window's ends only
        marks = (now, self._thread_time(), self._process_time())
        mine = marks[1] - self._start[1]
        others = max(0.0, marks[2] - self._start[2] - mine)
        self._start, frames, self._frames = marks, self._frames, 0
        self.last = {
            "busy": mine / wall,
            "invoke_cpu_ms": mine / frames * 1000.0,
            "others_cpu_ms": others / frames * 1000.0,
        }
        bottleneck = mine >= self.busy * wall and others <= self.ratio * mine
        self._streak = self._streak + 1 if bottleneck else 0
        if self._streak >= self.windows:
            lowered = self._apply(self.nice, threading.get_native_id())
            self.state = "favoured" if lowered else "refused"
            self.applied = True  # last: a thread that sees it set finds the priorities already changed
            if lowered:
                log.info("inference_favoured", nice=self.nice, threads_lowered=lowered, **_rounded(self.last))
            else:  # setpriority refused: a unit whose SystemCallFilter lacks it (the shipped one has it)
                log.warning("inference_priority_refused", **_rounded(self.last))


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in figures.items()}
