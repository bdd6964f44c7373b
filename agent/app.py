"""The composition root: builds the agent's parts from the config and wires them. No logic of its own."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

import structlog

from agent import __version__, events
from agent.capture import ResilientSource, SkippedImages, open_source
from agent.capture.base import FrameSource
from agent.commands_remote import register_commands
from agent.config import AgentConfig, read_password
from agent.console import build_consoles
from agent.drift.monitor import DriftMonitor
from agent.errors import PublishError
from agent.events import Event
from agent.health.report import HealthReporter
from agent.line.service import Hooks, build_lines
from agent.line.state import agent_state
from agent.log import bind
from agent.model import state as model_state
from agent.model.loaded import LoadedModel, load_model
from agent.model.store import restore_link
from agent.pipeline.runner import Pipeline
from agent.pipeline.supervisor import Supervisor
from agent.pipeline.swap import ModelSlot, ReloadBusy
from agent.protocol.payloads import encode, event_payload
from agent.protocol.topics import Topics
from agent.publish import CommandRouter, Priority, Publisher
from agent.sampling import build_samplers, register_sampling_commands
from agent.sdnotify import Notifier
from agent.shadow import build_shadows
from agent.shadow.promote import promote

log = structlog.get_logger(__name__)

TICK_S = 0.1
FIRST_CONNECT_S = 3.0
EXIT_DRAIN_S = 2.0  # on a stop or a failure: what the broker takes this quickly is not left in the outbox


class Agent:
    """One camera, one model, one broker connection."""

    pipeline: Pipeline  # declared: the shadow's gates read it before it is built
    supervisor: Supervisor  # declared: the line's state hook reads it before it is built

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.camera_state = "starting"
        self.started = time.time()
        self._stop = threading.Event()
        self._reload_asked = threading.Event()  # set by SIGHUP, served by the main loop
        self._shadow_reload_asked = threading.Event()
        self._stop_reason = "stopped"
        self.topics = Topics.from_config(cfg)
        self.skips = SkippedImages(lambda *skip: self.emit(events.image_skipped(*skip)))
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
            emit=self.emit,
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
        samplers = build_samplers(cfg, self.publisher, self.topics)
        drift = DriftMonitor(
            cfg,
            model=lambda: self.slot.model,
            sink=self.publisher,
            topics=self.topics,
            on_drift=[sampler.set_drift for sampler in samplers],
        )
        self.shadows = build_shadows(
            cfg,
            load=self.load,
            busy=lambda: self.pipeline.infer_started is not None,
            budget_ms=lambda: self.pipeline.budget_ms(self.slot.model),
            sink=self.publisher,
            topics=self.topics,
            emit=self.emit,
            offer=[sampler.offer for sampler in samplers],
        )
        self.lines = build_lines(  # the line integration (docs/line.md): [] unless configured
            cfg,
            Hooks(
                trigger=lambda *args: self.pipeline.trigger(*args),  # noqa: PLW0108 - built below
                agent_state=lambda: agent_state(self.supervisor.health(), self.camera_state),
                labels=lambda: self.slot.model.package.labels,
                model_version=lambda: self.slot.model.version,
            ),
            sink=self.publisher,
            topics=self.topics,
            emit=self.emit,
        )
        self.pipeline = Pipeline(
            cfg,
            source_factory=self._source,
            slot=self.slot,
            topics=self.topics,
            sink=self.publisher,
            emit=self.emit,
            observers=[*samplers, drift, *self.shadows, *build_consoles(cfg, self), *self.lines],
        )
        self.observers = self.pipeline.observers
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
            observers=self.observers,
        )
        self.router = CommandRouter()
        register_commands(self.router, self)
        for sampler in samplers:
            register_sampling_commands(self.router, sampler, labels=lambda: self.slot.model.package.labels)

    # -- parts ------------------------------------------------------------------------
    def load(self, path: str) -> LoadedModel:
        return load_model(str(self.cfg.resolve(path)), self.model_cfg)

    def _source(self) -> FrameSource:
        cam = self.cfg.camera
        if cam.spec.finite and not cam.loop:
            return open_source(cam, self.cfg.base_dir, self.skips)
        return ResilientSource(lambda: open_source(cam, self.cfg.base_dir, self.skips), cam, self._on_camera)

    def _on_camera(self, state: str) -> None:
        if state == self.camera_state:
            return
        first = self.camera_state == "starting"
        self.camera_state = state
        if not first or state != "online":
            self.emit(events.camera(state))
        self.publisher.refresh_status()

    def emit(self, event: Event) -> None:
        """An event on .../event at QoS 1 through the outbox; one the publisher refuses is logged, not raised
        (events are raised from the stage threads, which must not stop over a report)."""
        payload = encode(event_payload(self.cfg.device, event))
        try:
            self.publisher.publish(self.topics.event, payload, qos=self.cfg.mqtt.qos, priority=Priority.EVENT)
        except PublishError as exc:
            log.warning("event_not_sent", kind=event.kind.value, error=str(exc))

    def status(self) -> dict[str, Any]:
        return {
            "agent_version": __version__,
            "device": self.cfg.device.id,
            "model": self.slot.model.summary,
            "camera": self.camera_state,
            "mode": self.cfg.camera.mode,
            "since": int(self.started * 1000),
            "skipped_images": self.skips.summary(),
        }

    def request_reload(self, path: str | None = None) -> Future[dict[str, Any]]:
        return self.slot.request(path)

    def _reload_if_asked(self) -> None:
        """SIGHUP (the store switched ``current``): reload on the main loop, never in the handler.

        Several SIGHUPs make one reload; one that arrives while a load is refused as too soon
        waits for the next tick instead of being lost, since the store expects the agent to follow.
        """
        if self._shadow_reload_asked.is_set():
            self._shadow_reload_asked.clear()
            for shadow in self.shadows:  # the store's `shadow` link, looked up again
                shadow.reload()
        if not self._reload_asked.is_set():
            return
        self._reload_asked.clear()  # before the request: a SIGHUP during it is served next tick
        try:
            self.request_reload()
        except ReloadBusy:
            self._reload_asked.set()  # too soon after the last load: try again on the next tick

    def promote_shadow(self) -> Future[dict[str, Any]]:
        return promote(self.shadows, self.slot.request, self.cfg.resolve(self.cfg.model.path), restore_link)

    def trigger(self, timeout: float, source: str = "mqtt") -> dict[str, Any]:
        """Through the line's trigger queue (counted, tagged) when there is one (trigger mode)."""
        if self.lines:
            return dict(self.lines[0].command(timeout, source))
        return dict(self.pipeline.trigger(timeout))

    def status_report(self) -> dict[str, Any]:
        return {**self.status(), **self.supervisor.health(), "counters": self.pipeline.counters.snapshot()}

    def stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    # -- run --------------------------------------------------------------------------
    def run(self) -> int:
        """Run until a finite source ends (exit 0 once every message is delivered) or a signal stops us.

        Every part started here is stopped by the exit stack, whatever ends the run (a signal,
        the end of the source, a pipeline failure or a bug in a tick): the sampler's queue goes
        to the outbox, the pipeline stops, health.json says stopped, and the publisher says
        offline with the reason before it closes the outbox.
        """
        self._install_signals()
        with contextlib.ExitStack() as stack:
            self.health.start()  # the Prometheus endpoint, when configured: a busy port stops us here
            stack.callback(lambda: self.health.stop(self._stop_reason))
            self.publisher.start()
            stack.callback(lambda: self.publisher.stop(self._stop_reason))
            stack.callback(self._drain_briefly)
            stack.callback(self.supervisor.notifier.stopping)
            stack.push(self._note_exit)  # unwinds before the callbacks above: they report its reason
            self.publisher.on_command(self.router)
            _wait_for(lambda: self.publisher.connected, FIRST_CONNECT_S)
            self.pipeline.start()
            stack.callback(self.pipeline.stop)
            for line in self.lines:  # after the pipeline: a trigger always finds it running
                line.start()
                stack.callback(line.stop)
            stack.callback(self.observers.close, 5.0)  # queued samples go to the outbox first
            if self.camera_state == "starting":
                self._on_camera("online")
            log.info(
                "agent_started", source=self.pipeline.source.description if self.pipeline.source else None
            )
            while not self._stop.is_set() and not self.pipeline.done.is_set():
                self._reload_if_asked()
                self.supervisor.tick()
                self.observers.tick()
                self.health.tick()
                self._stop.wait(TICK_S)
            return self._finish()

    def _note_exit(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> bool:
        """An exception ending the run becomes the stop reason (the stack still unwinds and re-raises)."""
        if exc is not None:  # logged once, by whoever catches it (the CLI, or Python's traceback)
            self._stop_reason = str(exc) or (kind.__name__ if kind is not None else "error")
        return False

    def _drain_briefly(self) -> None:
        """Every exit path hands the broker what it can take in EXIT_DRAIN_S; the rest stays in the
        persistent outbox for the next start (a finished source was drained in full by _finish)."""
        if self.publisher.connected:
            self.publisher.drain(EXIT_DRAIN_S)

    def _finish(self) -> int:
        """The normal end of a run: deliver what a finished source produced, then report why we stop."""
        failure = self.pipeline.failure
        finished = self.pipeline.done.is_set() and failure is None
        if finished:
            self.observers.close(5.0)  # before the drain: queued samples are part of what must be delivered
            log.info("source_finished_draining_outbox", **self.publisher.stats())
            while not self.publisher.drain(5.0) and not self._stop.is_set():
                log.warning("waiting_for_broker_to_take_outbox", **self.publisher.stats())
        self._stop_reason = str(failure) if failure else ("finished" if finished else self._stop_reason)
        log.info("agent_stopped", reason=self._stop_reason, **self.pipeline.counters.snapshot())
        if failure is not None:
            raise failure
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.stop("SIGINT"))
        signal.signal(signal.SIGHUP, lambda *_: self._on_sighup())

    def _on_sighup(self) -> None:
        """Only flags: the main loop re-resolves the active model (a store's ``current``) and the
        shadow (its ``shadow`` link), so nothing is raised into what the main thread was doing."""
        self._shadow_reload_asked.set()
        self._reload_asked.set()


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
