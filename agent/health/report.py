"""The health reporter: every ``health.interval_s``, one retained report on ``.../health``.

The main loop calls :meth:`HealthReporter.tick` a few times a second (it is cheap
until a report is due). A report gathers the pipeline's counters and the latency
percentiles of the interval just ended, the outbox, the frame observers' state
(sampler, drift, and how often each failed), and process/machine figures; it is
published (retained; QoS 0 by default: each report supersedes the last, so none is
worth an outbox row), written to
``{state.dir}/health.json`` for ``inspection-agent status``, and handed to the
Prometheus exporter when one is configured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from agent.config.schema import AgentConfig
from agent.errors import AgentError, PublishError
from agent.health import statefile, system
from agent.pipeline.observers import ObserverHealth
from agent.pipeline.stats import Counters, LatencyWindow
from agent.protocol.payloads import encode
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink

if TYPE_CHECKING:
    from agent.health.prometheus import PrometheusExporter

log = structlog.get_logger(__name__)

Stats = Callable[[], dict[str, Any]]


class PipelineView(Protocol):
    """What health reads from the pipeline (``agent.pipeline.runner.Pipeline`` has it)."""

    counters: Counters
    latency: LatencyWindow

    def scheduling(self) -> dict[str, str]: ...


class SupervisorView(Protocol):
    def health(self) -> dict[str, Any]: ...


class ObserversView(Protocol):
    """What health reads from the frame observers (``agent.pipeline.observers.Observers`` has it)."""

    def section(self, name: str) -> dict[str, Any] | None: ...

    def health(self) -> Mapping[str, ObserverHealth]: ...


class HealthReporter:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        pipeline: PipelineView,
        supervisor: SupervisorView,
        sink: Sink,
        topics: Topics,
        publisher_stats: Stats,
        status: Stats,
        observers: ObserversView,
    ) -> None:
        self._cfg = cfg
        self._interval = cfg.health.interval_s
        self._pipeline = pipeline
        self._supervisor = supervisor
        self._sink = sink
        self._topic = topics.health
        self._publisher_stats = publisher_stats
        self._status = status
        self._observers = observers
        self.path = cfg.state_dir / statefile.FILENAME
        self._state_dir = self.path.parent
        self._cpu = system.CpuMeter()
        self._threads = system.ThreadCpuMeter()
        self._started = self._last_t = time.monotonic()
        self._last_counts = (0, 0)
        self._due = self._started + self._interval
        self._exporter: PrometheusExporter | None = None
        self._failing: set[str] = set()  # what failed last time, so a fault is logged once
        self.reports = 0
        self.last: dict[str, Any] | None = None

    def start(self) -> None:
        """Write a first health.json, then start the Prometheus endpoint when configured (AgentError
        if it cannot listen). Without the first file `status` says NOT RUNNING for the whole first
        interval of a running agent; this one says "starting" (or "ok") at once."""
        self._guard("file", lambda: statefile.write_atomic(self.path, self._collect(time.monotonic())))
        if self._cfg.health.prometheus is not None:
            from agent.health.prometheus import PrometheusExporter

            self._exporter = PrometheusExporter(self._cfg.health.prometheus, self._cfg.device.id)

    def tick(self, now: float | None = None) -> bool:
        """Publish a report when due. True when one was published."""
        now = time.monotonic() if now is None else now
        if now < self._due:
            return False
        self._due = max(self._due + self._interval, now + self._interval / 2)
        self.report(now)
        return True

    def report(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        doc = self._collect(now)
        self.last = doc
        self.reports += 1
        self._guard("publish", lambda: self._publish(doc))
        self._guard("file", lambda: statefile.write_atomic(self.path, doc))
        if self._exporter is not None:
            self._exporter.update(doc)
        return doc

    def stop(self, reason: str) -> None:
        """Mark health.json stopped (so `status` says so at once) and close the endpoint."""
        doc = {**(self.last or self._collect(time.monotonic())), "state": "stopped", "reason": reason}
        doc["ts"] = int(time.time() * 1000)
        self._guard("file", lambda: statefile.write_atomic(self.path, doc))
        if self._exporter is not None:
            self._exporter.close()
            self._exporter = None

    def _publish(self, doc: dict[str, Any]) -> None:
        qos = self._cfg.health.qos
        priority = Priority.RESULT  # only used at QoS 1: below events and defects when the outbox is full
        self._sink.publish(self._topic, encode(doc), qos=qos, priority=priority, retain=True)

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        """Health must keep going when the broker or the disk refuses; each fault logged once."""
        try:
            action()
        except (PublishError, AgentError) as exc:
            if what not in self._failing:
                log.warning("health_" + what + "_failed", error=str(exc))
            self._failing.add(what)
        else:
            self._failing.discard(what)

    # -- the report ---------------------------------------------------------------------
    def _collect(self, now: float) -> dict[str, Any]:
        status = self._status()
        sup = self._supervisor.health()
        counters = self._pipeline.counters.snapshot()
        latency, samples = self._pipeline.latency.drain_interval()
        pub = self._publisher_stats()
        counters["reconnects"] = int(pub.get("reconnects", 0))
        device = self._cfg.device
        degraded = "; ".join(_degraded(sup, pub)) or None
        return {
            "ts": int(time.time() * 1000),
            "device": device.id,
            "site": device.site,
            "line": device.line,
            "state": "degraded" if degraded else ("ok" if sup.get("ready") else "starting"),
            "degraded": degraded,
            "flowing": bool(sup.get("flowing")),
            "agent_version": status.get("agent_version"),
            "pid": os.getpid(),
            "uptime_s": round(now - self._started, 1),
            "interval_s": self._interval,
            "camera": status.get("camera"),
            "skipped_images": status.get("skipped_images"),
            "model": _model(status.get("model")),
            "fps": self._fps(now, counters),
            "counters": counters,
            "latency_ms": latency,
            "latency_frames": samples,
            "scheduling": self._pipeline.scheduling(),
            "outbox": _outbox(pub),
            "sampler": self._observers.section("sampler"),
            "drift": self._observers.section("drift"),
            "shadow": self._observers.section("shadow"),
            "line_io": self._observers.section("line"),  # "line" is the line's name (device.line)
            "observers": dict(self._observers.health()),
            "system": self._system(),
        }

    def _fps(self, now: float, counters: dict[str, int]) -> dict[str, float]:
        counts = (counters["captured"], counters["inspected"])
        dt = max(now - self._last_t, 1e-6)
        rates = [round((c - c0) / dt, 2) for c, c0 in zip(counts, self._last_counts, strict=True)]
        self._last_t, self._last_counts = now, counts
        return {"captured": rates[0], "inspected": rates[1]}

    def _system(self) -> dict[str, Any]:
        return {
            "cpu_percent": self._cpu.percent(),
            "threads_percent": self._threads.percent(),
            "rss_bytes": system.rss_bytes(),
            "cpu_temp_c": system.cpu_temp_c(),
            "disk_free_bytes": system.disk_free_bytes(_existing(self._state_dir)),
        }


def _model(summary: Any) -> dict[str, Any] | None:
    if not isinstance(summary, dict):
        return None
    return {k: summary.get(k) for k in ("name", "version", "sha256", "runtime")}


def _degraded(sup: dict[str, Any], pub: dict[str, Any]) -> list[str]:
    """Every reason the agent is degraded: the supervisor's (a stuck stage) and the outbox's."""
    reasons = [str(sup["degraded"])] if sup.get("degraded") else []
    if pub.get("disk_full"):
        lost = int(dict(pub.get("dropped", {})).get("defect", 0))
        reasons.append(f"outbox disk full: dropping lowest priority first ({lost} defects lost so far)")
    if pub.get("writer_failed"):
        reasons.append(f"outbox writer stopped: {pub['writer_failed']}")
    return reasons


def _outbox(pub: dict[str, Any]) -> dict[str, Any]:
    return {
        "connected": bool(pub.get("connected")),
        "depth": int(pub.get("outbox_depth", 0)),
        "bytes": int(pub.get("outbox_bytes", 0)),
        "inflight": int(pub.get("inflight", 0)),
        "dropped": {str(k): int(v) for k, v in dict(pub.get("dropped", {})).items()},
        "expired": int(pub.get("expired", 0)),
        "qos0_dropped": int(pub.get("qos0_dropped", 0)),
        "last_error": pub.get("last_error"),
        "disk_full": pub.get("disk_full"),
    }


def _existing(path: Path) -> Path:
    """The nearest existing directory (the state dir before its first write)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
