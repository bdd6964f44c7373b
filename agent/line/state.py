"""What every protocol serves: counters and the last result, updated from the publish thread.

One small object under one lock, read as a snapshot, so the Modbus, OPC UA and Sparkplug servers
never reach into the pipeline and a slow client never holds up a frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Literal

AgentState = Literal["starting", "running", "degraded", "fault", "stopped"]
STATE_CODES: dict[str, int] = {"starting": 0, "running": 1, "degraded": 2, "fault": 3, "stopped": 4}


@dataclass(frozen=True, slots=True)
class Snapshot:
    parts: int = 0  # inspected results
    defects: int = 0
    label: str = ""
    defect: bool = False  # the last result
    label_index: int = 0  # the last result's index in the model's labels
    score: float = 0.0
    latency_ms: float = 0.0
    state: str = "starting"
    model_version: str = ""
    triggers: int = 0  # accepted trigger edges and requests
    missed: int = 0  # lost by the kernel or refused because the queue was full
    overlapped: int = 0  # arrived while another inspection was still in flight
    late_rejects: int = 0
    rejects: int = 0
    trigger_seq: int = 0  # the last published trigger's sequence number
    reject_enabled: bool = True  # a PLC may turn the reject gate off (Modbus holding register 32)


class LineState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = Snapshot()
        self.changed = threading.Event()  # set on every update: Sparkplug's publisher waits on it

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snap

    def update(self, **changes: object) -> None:
        with self._lock:
            self._snap = replace(self._snap, **changes)  # type: ignore[arg-type]
        self.changed.set()

    def add(self, **increments: int) -> None:
        with self._lock:
            s = self._snap
            self._snap = replace(s, **{k: getattr(s, k) + v for k, v in increments.items()})
        self.changed.set()


def agent_state(health: dict[str, object], camera: str) -> str:
    """The one-word state the PLC sees, from the supervisor's health and the camera's state."""
    if not health.get("ready"):
        return "starting"
    if health.get("degraded"):
        return "degraded"
    if camera != "online" or not health.get("flowing"):
        return "fault"
    return "running"
