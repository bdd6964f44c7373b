"""The real-time pipeline: capture+preprocess -> inference -> postprocess+publish, one thread each.

Native calls (OpenCV decode and resize, the runtime's invoke) release the GIL, so the three
stages overlap; each frame is preprocessed on the capture thread into its own tensor
(agent/pipeline/prepare.py), so the inference thread only invokes. Live sources hand frames
over through a one-slot latest-frame slot and frames older than the budget are dropped as
stale; replays go through a bounded lossless queue. Every frame carries its capture time and
per-stage timings.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import structlog

from agent.capture.base import Frame, FrameSource
from agent.config.schema import AgentConfig
from agent.errors import AgentError, CameraError
from agent.events import EventSink
from agent.model.loaded import LoadedModel
from agent.model.preprocess import Transform
from agent.observer import FrameObserver
from agent.pipeline.budget import OverrunMonitor
from agent.pipeline.handoff import BoundedQueue, Closed, Handoff, LatestSlot
from agent.pipeline.observers import Observers, SwapWatch
from agent.pipeline.prepare import Placement, Prepared, Preparer, prepare_for
from agent.pipeline.priority import Favour
from agent.pipeline.stats import Counters, LatencyWindow
from agent.pipeline.swap import ModelSlot
from agent.protocol.payloads import ResultPayload, TriggerTag, encode, result_payload
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Job:
    frame: Frame
    queued_at: float = 0.0
    model: LoadedModel | None = None
    outputs: list[np.ndarray] | None = None
    transform: Transform | None = None
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    queue_ms: float = 0.0
    error: str | None = None
    reply: Future[ResultPayload] | None = field(default=None)
    tag: TriggerTag | None = None  # the trigger this frame answers, published with its result
    prepared: Prepared | None = None  # its input tensor, made on the capture thread


_END: Any = object()
T = TypeVar("T")


class Pipeline:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        source_factory: Callable[[], FrameSource],
        slot: ModelSlot,
        topics: Topics,
        sink: Sink,
        emit: EventSink,
        observers: Sequence[FrameObserver] = (),
        fallback_hold_s: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.slot = slot
        self.topics = topics
        self._result_topic, self._defect_topic = topics.result, topics.defect  # built once, not per frame
        self._sink = sink
        self._emit = emit
        # The swap watch is always there: a new model is watched whatever else observes frames.
        self.observers = Observers([*observers, SwapWatch(slot)], emit=emit)
        self._source_factory = source_factory
        self.source: FrameSource | None = None
        self.counters = Counters()
        self.latency = LatencyWindow()
        self.overrun = OverrunMonitor(
            cfg.inference, emit, fallback=slot.use_fallback, fallback_hold_s=fallback_hold_s
        )
        self.done = threading.Event()  # a finite source ended and every frame was published
        self.failure: AgentError | None = None
        self.last_inspected = 0.0  # monotonic time of the last published frame (liveness)
        self.capture_started: float | None = None  # set while a capture read is in progress
        self.infer_started: float | None = None  # set while invoke (and any late preprocessing) runs
        self.placement = Placement()  # which thread preprocesses (prepare.py)
        favour = cfg.inference.priority == "auto" and cfg.model.threads == 1
        self.favour = Favour(enabled=favour)  # the inference thread first when it is the bottleneck
        self._stop = threading.Event()
        self._generation = {"capture": 0, "infer": 0}
        self._live = True
        self._frames: Handoff[Job] = LatestSlot()
        self._results: BoundedQueue[Job] = BoundedQueue(max(4, cfg.camera.queue_size))
        self._trigger_lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._skip_n = 0
        self._side: collections.deque[Callable[[LoadedModel], None]] = collections.deque()

    def scheduling(self) -> dict[str, str]:
        """What the adaptive parts decided, for health: where frames are preprocessed
        (``capture`` or ``inference``) and the inference thread's priority (``watching``,
        ``favoured``, ``refused`` or ``equal``)."""
        return {
            "preprocess": "capture" if self.placement.on_capture else "inference",
            "priority": self.favour.state,
        }

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Open the source (a finite source that cannot be opened raises CameraError) and start the stages."""
        self.source = self._source_factory()
        self.source.open()
        self._live = bool(self.source.live)
        if not self._live:
            self._frames = BoundedQueue(self.cfg.camera.queue_size)
        if self.cfg.camera.mode == "continuous":
            self._spawn("capture", self._capture_loop)
        self._spawn("infer", self._infer_loop)
        self._spawn("publish", self._publish_loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the stages and wait for them, then close the source (never under a running read)."""
        self._stop.set()
        self._frames.close()
        self._results.close()
        source = self.source
        wake = getattr(source, "stop", None)
        if callable(wake):
            wake()  # a reconnecting camera waiting between retries returns at once
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if source is not None:
            source.close()

    def _spawn(self, stage: str, target: Callable[[int], None]) -> None:
        self._generation[stage] = self._generation.get(stage, 0) + 1
        gen = self._generation[stage]
        thread = threading.Thread(
            target=self._guard, args=(stage, target, gen), name=f"{stage}-{gen}", daemon=True
        )
        self._threads[stage] = thread  # a replaced (hung) thread is abandoned, never joined
        thread.start()

    def _guard(self, stage: str, target: Callable[[int], None], gen: int) -> None:
        try:
            target(gen)
        except Closed:
            pass
        except Exception as exc:  # a bug in a stage must stop the agent loudly, not hang it
            log.exception("stage_crashed", stage=stage)
            self.fail(AgentError(f"{stage} stage crashed: {exc}"))

    def fail(self, error: AgentError) -> None:
        if self.failure is None:
            self.failure = error
        self.done.set()

    def restart_stage(self, stage: str) -> None:
        """Abandon a stuck stage thread (its late result is discarded) and start a fresh one."""
        if stage == "capture":
            old = self.source
            self.counters.camera_restarts += 1
            self.capture_started = None
            fresh = self._source_factory()
            fresh.open()
            self.source = fresh
            self._spawn(
                "capture", self._capture_loop
            )  # bumps the generation: the old thread's frame is dropped
            if (
                old is not None
            ):  # closing may unblock the stuck read; it may also block, so not on this thread
                threading.Thread(target=old.close, daemon=True).start()
        else:
            self.counters.inference_restarts += 1
            self.counters.errors += 1  # the frame inside the hung call is lost
            self.infer_started = None
            self._spawn("infer", self._infer_loop)

    # -- stage 1: capture -------------------------------------------------------------
    def _capture_loop(self, gen: int) -> None:
        source = self.source
        assert source is not None
        prepare = Preparer(self.slot)  # this thread's own preprocessor and tensors
        placement = self.placement
        while not self._stop.is_set():
            self.capture_started = time.monotonic()
            cpu = time.thread_time()
            try:
                frame = source.read()
            except CameraError as exc:
                self.fail(exc)
                frame = None
            placement.note_read((time.thread_time() - cpu) * 1000.0)
            if gen != self._generation["capture"]:
                return
            self.capture_started = None
            if frame is None:
                if source.live and not self._stop.is_set():
                    self.fail(CameraError(f"{source.description} ended its stream"))
                self._frames.put_final(_END)
                return
            self.counters.captured += 1
            prepared = prepare(frame) if placement.on_capture else None  # else the inference thread does
            if self._frames.put(Job(frame, queued_at=time.monotonic(), prepared=prepared)):
                self.counters.dropped += 1

    def trigger(
        self, timeout: float, edge: float | None = None, settle_s: float = 0.0, tag: TriggerTag | None = None
    ) -> ResultPayload:
        """Triggered mode: capture one frame now, inspect it, return its result payload.

        With ``edge`` (monotonic time of a trigger's edge), frames delivered before ``edge + settle_s``
        were buffered or exposed before the edge and are passed over (counted stale); ``tag`` goes
        out with the result, with the edge-to-frame delay filled in (agent/line, docs/line.md).
        """
        assert self.source is not None
        with self._trigger_lock:
            frame = self.source.read()
            while frame is not None and edge is not None and frame.mono < edge + settle_s:
                self.counters.stale += 1
                frame = self.source.read()
        if frame is None:
            raise CameraError("the camera returned no frame")
        if tag is not None and edge is not None:
            tag = tag.copy()
            tag["exposure_delay_ms"] = round((frame.mono - edge) * 1000.0, 3)
        self.counters.captured += 1
        job = Job(frame, queued_at=time.monotonic(), reply=Future(), tag=tag)
        self._frames.put(job)
        assert job.reply is not None
        return job.reply.result(timeout)

    # -- stage 2: inference -------------------------------------------------------------
    def budget_ms(self, model: LoadedModel) -> float:
        return self.cfg.inference.budget_ms or model.package.manifest.budget_ms

    def between_frames(self, work: Callable[[LoadedModel], T], timeout: float) -> T:
        """Run ``work(model)`` on the inference thread between two frames (the console's classify):
        the runtime is never used by two threads, and the line loses one inference's time, no frame."""
        future: Future[T] = Future()

        def run(model: LoadedModel) -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work(model))
                except Exception as exc:  # the caller gets it; the inference thread goes on
                    future.set_exception(exc)

        self._side.append(run)
        try:
            return future.result(timeout)
        finally:
            future.cancel()  # not started in time: the inference thread will skip it

    def _infer_loop(self, gen: int) -> None:
        while not self._stop.is_set():
            while self._side:
                self._side.popleft()(self.slot.take())
            job = self._frames.get(0.25)
            if job is None:
                continue
            if job is _END:
                self._results.put(_END)
                return
            if not self._admit(job):
                if job.prepared is not None:
                    job.prepared.release()  # its tensor serves a later frame
                continue
            self._infer(job, gen)
            if gen != self._generation["infer"]:
                return  # this thread was declared hung and replaced: drop its late result
            self._results.put(job)

    def _admit(self, job: Job) -> bool:
        """Stale frames (live sources only) and frames passed over by the skip policy are dropped here."""
        if job.reply is not None:
            return True
        model = self.slot.model
        if self._live and (time.monotonic() - job.frame.mono) * 1000.0 > self.budget_ms(model):
            self.counters.stale += 1
            return False
        every = self.overrun.skip_every
        if every > 1:
            self._skip_n += 1
            if self._skip_n % every:
                self.counters.skipped += 1
                return False
        return True

    def _infer(self, job: Job, gen: int) -> None:
        model = self.slot.take()
        job.model = model
        t0 = time.monotonic()
        job.queue_ms = (t0 - job.queued_at) * 1000.0
        self.infer_started = t0
        try:
            prepared = prepare_for(model, job.frame, job.prepared)  # again only after a swap
            job.transform = prepared.transform
            t1 = time.monotonic()
            job.outputs = model.run(prepared.tensor)
            t2 = time.monotonic()
            prepared.release()  # the capture thread may refill its tensor from here on
            job.prepared = None
            job.preprocess_ms, job.infer_ms = prepared.ms, (t2 - t1) * 1000.0
            self.placement.note_invoke(job.infer_ms)
            self.favour.note()
        except Exception as exc:  # a runtime error on one frame is counted, reported, and the line goes on
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            if gen == self._generation["infer"]:
                self.infer_started = None

    # -- stage 3: postprocess + publish ---------------------------------------------------
    def _publish_loop(self, gen: int) -> None:
        while True:
            job = self._results.get(0.25)
            if job is None:
                if self._stop.is_set():
                    return
                continue
            if job is _END:
                self.done.set()
                return
            self._publish(job)

    def _publish(self, job: Job) -> None:
        model = job.model
        assert model is not None
        if job.error is None:
            t3 = time.monotonic()
            try:
                result = model.postprocess(job.outputs or [], job.transform)  # type: ignore[arg-type]
            except AgentError as exc:
                job.error = str(exc)
        if job.error is not None:
            self.counters.errors += 1
            log.warning("frame_failed", frame=job.frame.seq, error=job.error)
            self.observers.failed(job.frame, model.summary, job.error)
            if job.reply is not None:
                job.reply.set_exception(AgentError(job.error))
            return
        t4 = time.monotonic()
        budget = self.budget_ms(model)
        frame = job.frame
        latency = (
            frame.capture_ms,
            job.queue_ms,
            job.preprocess_ms,
            job.infer_ms,
            (t4 - t3) * 1000.0,
            (t4 - frame.mono) * 1000.0,
        )
        payload = result_payload(
            device=self.cfg.device,
            frame=frame,
            result=result,
            model=model.summary,
            latency=latency,
            budget_ms=budget,
        )
        if job.tag is not None:
            payload["trigger"] = job.tag
        self._send(payload, result.is_defect)
        self._account(latency, payload["over_budget"], result.is_defect)
        self.overrun.observe(payload["over_budget"])  # before the swap watch: a rollback wins over a fallback
        self.observers.observe(frame, result, payload)
        if job.reply is not None:
            job.reply.set_result(payload)

    def _send(self, payload: ResultPayload, defect: bool) -> None:
        mqtt = self.cfg.mqtt
        data = encode(payload)
        if mqtt.publish_results:
            self._sink.publish(self._result_topic, data, qos=mqtt.results_qos, priority=Priority.RESULT)
        if defect:
            self._sink.publish(self._defect_topic, data, qos=mqtt.qos, priority=Priority.DEFECT)

    def _account(self, latency: tuple[float, ...], over: bool, defect: bool) -> None:
        c = self.counters
        c.inspected += 1
        c.over_budget += over
        c.defects += defect
        self.latency.add(latency)
        self.last_inspected = time.monotonic()
