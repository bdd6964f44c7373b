"""The composition root: builds the agent's parts from the config and wires them. No logic of its own."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

from agent import __version__
from agent.capture import ResilientSource, open_source
from agent.capture.base import FrameSource
from agent.commands_remote import register_commands
from agent.config import AgentConfig, read_password
from agent.drift.monitor import DriftMonitor
from agent.errors import AgentError
from agent.health.report import HealthReporter
from agent.log import bind
from agent.model import state as model_state
from agent.model.loaded import LoadedModel, load_model
from agent.model.store import restore_link
from agent.pipeline.payloads import encode, event_payload
from agent.pipeline.runner import FrameObserver, Pipeline
from agent.pipeline.supervisor import Supervisor
from agent.pipeline.swap import ModelSlot
from agent.publish import CommandRouter, Priority, Publisher, Topics
from agent.sampling import build_sampler, register_sampling_commands
from agent.sdnotify import Notifier

log = structlog.get_logger(__name__)

TICK_S = 0.1
FIRST_CONNECT_S = 3.0


class Agent:
    """One camera, one model, one broker connection."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.camera_state = "starting"
        self.started = time.time()
        self._stop = threading.Event()
        self._stop_reason = "stopped"
        self.topics = Topics.from_config(cfg)
        self.model_cfg = cfg.model_settings()
        model = self.load(cfg.model.path)
        bind(device=cfg.device.id, model=model.name, model_version=model.version)
        self.publisher = Publisher(
            cfg.mqtt,
            cfg.outbox_settings,
            topics=self.topics,
            client_id=cfg.mqtt.client_id or f"{self.topics.root.replace('/', '-')}",
            password=read_password(cfg.mqtt, cfg.base_dir),
            base_dir=cfg.base_dir,
            status_payload=self.status,
        )
        self.slot = ModelSlot(
            model,
            loader=self.load,
            model_path=cfg.resolve(cfg.model.path),
            state_file=model_state.path_in(cfg.state_dir),
            emit=self.emit,
            watch_frames=cfg.inference.rollback_frames,
            overrun_ratio=cfg.inference.overrun_ratio,
            restore_link=restore_link,
        )
        if cfg.model.fallback is not None:
            self.slot.set_fallback(self.load(cfg.model.fallback))
        self.sampler = build_sampler(cfg, self.publisher, self.topics)
        self.drift = DriftMonitor(
            cfg,
            model=lambda: self.slot.model,
            sink=self.publisher,
            topics=self.topics,
            on_drift=self.sampler.set_drift if self.sampler is not None else None,
        )
        observers: list[FrameObserver] = [self.drift] if self.sampler is None else [self.sampler, self.drift]
        self.pipeline = Pipeline(
            cfg,
            source_factory=self._source,
            slot=self.slot,
            topics=self.topics,
            sink=self.publisher,
            emit=self.emit,
            observers=observers,
        )
        self.supervisor = Supervisor(
            self.pipeline,
            notifier=Notifier.from_env(),
            emit=self.emit,
            reload_model=lambda path: load_model(path, self.model_cfg, warmup=False),
            camera_state=lambda: self.camera_state,
        )
        self.health = HealthReporter(
            cfg,
            pipeline=self.pipeline,
            supervisor=self.supervisor,
            sink=self.publisher,
            topics=self.topics,
            publisher_stats=self.publisher.stats,
            status=self.status,
            sampler_stats=self.sampler.stats if self.sampler is not None else None,
            drift=self.drift,
        )
        self.router = CommandRouter()
        register_commands(self.router, self)
        if self.sampler is not None:
            register_sampling_commands(self.router, self.sampler)

    # -- parts ------------------------------------------------------------------------
    def load(self, path: str) -> LoadedModel:
        return load_model(str(self.cfg.resolve(path)), self.model_cfg)

    def _source(self) -> FrameSource:
        cam = self.cfg.camera
        if cam.spec.finite and not cam.loop:
            return open_source(cam, self.cfg.base_dir)
        return ResilientSource(lambda: open_source(cam, self.cfg.base_dir), cam, self._on_camera)

    def _on_camera(self, state: str) -> None:
        if state == self.camera_state:
            return
        first = self.camera_state == "starting"
        self.camera_state = state
        if not first or state != "online":
            self.emit(
                "camera", "warning" if state == "offline" else "info", f"camera {state}", {"camera": state}
            )
        self.publisher.refresh_status()

    def emit(self, kind: str, severity: str, message: str, details: dict[str, Any]) -> None:
        """An event on .../event at QoS 1 through the outbox."""
        payload = encode(event_payload(self.cfg.device, kind, severity, message, details))
        self.publisher.publish(self.topics.event, payload, qos=self.cfg.mqtt.qos, priority=Priority.EVENT)

    def status(self) -> dict[str, Any]:
        return {
            "agent_version": __version__,
            "device": self.cfg.device.id,
            "model": self.slot.model.summary,
            "camera": self.camera_state,
            "mode": self.cfg.camera.mode,
            "since": int(self.started * 1000),
        }

    def request_reload(self, path: str | None = None) -> Future[dict[str, Any]]:
        return self.slot.request(path)

    def stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    # -- run --------------------------------------------------------------------------
    def run(self) -> int:
        """Run until a finite source ends (exit 0 once every message is delivered) or a signal stops us."""
        self._install_signals()
        self.health.start()  # the Prometheus endpoint, when configured: a busy port stops us here
        self.publisher.start()
        self.publisher.on_command(self.router)
        _wait_for(lambda: self.publisher.connected, FIRST_CONNECT_S)
        try:
            self.pipeline.start()
        except AgentError:
            self.publisher.stop("camera failed", timeout=2.0)
            raise
        if self.camera_state == "starting":
            self._on_camera("online")
        log.info("agent_started", source=self.pipeline.source.description if self.pipeline.source else None)
        while not self._stop.is_set() and not self.pipeline.done.is_set():
            self.supervisor.tick()
            self.health.tick()
            self._stop.wait(TICK_S)
        return self._finish()

    def _finish(self) -> int:
        self.supervisor.notifier.stopping()
        failure = self.pipeline.failure
        finished = self.pipeline.done.is_set() and failure is None
        if self.sampler is not None:
            self.sampler.close(timeout=5.0)  # its queued samples go to the outbox before we drain it
        if finished:
            log.info("source_finished_draining_outbox", **self.publisher.stats())
            while not self.publisher.drain(5.0) and not self._stop.is_set():
                log.warning("waiting_for_broker_to_take_outbox", **self.publisher.stats())
        self.pipeline.stop()
        reason = str(failure) if failure else ("finished" if finished else self._stop_reason)
        self.health.stop(reason)
        self.publisher.stop(reason)
        log.info("agent_stopped", reason=reason, **self.pipeline.counters.snapshot())
        if failure is not None:
            raise failure
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.stop("SIGINT"))
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
