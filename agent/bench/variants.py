"""The measured variants. Each runs in its own process (see worker.py) so its peak RSS is its own.

- ``invoke``: the runtime alone on a ready tensor (the model's physical limit);
- ``source``: decode + preprocess alone (the camera side's limit);
- ``naive``: the sequential loop a user would write: read, preprocess, invoke, postprocess, publish;
- ``pipeline``: this agent's three-stage pipeline on the same source, model and threads;
- ``overload-naive`` / ``overload-pipeline``: a live camera producing frames at a given rate
  (twice the model's capacity), reporting the age of each frame when its result is published.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.capture import open_source
from agent.capture.base import Frame, FrameSource
from agent.config import AgentConfig
from agent.model import state as model_state
from agent.model.loaded import LoadedModel, load_model
from agent.pipeline.runner import Pipeline
from agent.pipeline.swap import ModelSlot
from agent.protocol.payloads import encode, result_payload
from agent.protocol.topics import Topics
from agent.publish import Priority


class NullSink:
    """Publishing without a network: the payload is built and encoded, then discarded."""

    def __init__(self) -> None:
        self.count = 0
        self.connected = True

    def publish(self, topic: str, payload: bytes, *, qos: int, priority: Priority, **_: Any) -> None:
        self.count += 1


def _replay_config(cfg: AgentConfig) -> AgentConfig:
    camera = dataclasses.replace(cfg.camera, realtime=False, loop=True, live=False)
    out = dataclasses.replace(cfg, camera=camera)
    object.__setattr__(out, "base_dir", cfg.base_dir)
    return out


def _model(cfg: AgentConfig) -> LoadedModel:
    return load_model(str(cfg.resolve(cfg.model.path)), cfg.model)


def _ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    p = np.percentile(np.asarray(samples) * 1000.0, [50, 95, 99])
    return {"p50": round(float(p[0]), 3), "p95": round(float(p[1]), 3), "p99": round(float(p[2]), 3)}


def _rate(frames: int, seconds: float) -> dict[str, Any]:
    """What a rate was computed from, reported beside it so a reader (or test) can check it."""
    return {"frames": frames, "seconds": round(seconds, 6), "fps": frames / seconds}


def _timed(frames: int, step: Callable[[], object]) -> dict[str, Any]:
    """Run ``step`` ``frames`` times: the rate over what ran and each step's latency percentiles."""
    times = []
    start = time.perf_counter()
    for _ in range(frames):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return _rate(len(times), time.perf_counter() - start) | {"latency_ms": _ms(times)}


def _read(src: FrameSource) -> Frame:
    frame = src.read()
    assert frame is not None  # replay loops forever
    return frame


def invoke(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    model = _model(cfg)
    src = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    tensor, _ = model.preprocess(_read(src).image)
    return _timed(frames, lambda: model.run(tensor))


def source(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    model = _model(cfg)
    src = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    return _timed(frames, lambda: model.preprocess(_read(src).image))


def _naive_step(cfg: AgentConfig, model: LoadedModel, frame: Frame, sink: NullSink, topic: str) -> float:
    tensor, transform = model.preprocess(frame.image)
    result = model.postprocess(model.run(tensor), transform)
    age = time.monotonic() - frame.mono
    payload = result_payload(
        device=cfg.device,
        frame=frame,
        result=result,
        model=model.summary,
        latency=(0.0, 0.0, 0.0, 0.0, 0.0, age * 1000.0),
        budget_ms=50.0,
    )
    sink.publish(topic, encode(payload), qos=0, priority=Priority.RESULT)
    return age


def naive(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    model = _model(cfg)
    src = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    sink, topic = NullSink(), Topics.from_config(cfg).result
    return _timed(frames, lambda: _naive_step(cfg, model, _read(src), sink, topic))


def _build_pipeline(cfg: AgentConfig, factory: Any) -> Pipeline:
    """The agent's pipeline on the configured model, publishing into a NullSink."""
    state = Path(tempfile.mkdtemp(prefix="inspection-bench-")) / model_state.FILENAME
    slot = ModelSlot(
        _model(cfg),
        loader=lambda p: _model(cfg),
        model_path=Path(cfg.model.path),
        state_file=state,
        emit=lambda *a: None,
        watch_frames=cfg.inference.rollback_frames,
        overrun_ratio=cfg.inference.overrun_ratio,
    )
    topics = Topics.from_config(cfg)
    return Pipeline(
        cfg, source_factory=factory, slot=slot, topics=topics, sink=NullSink(), emit=lambda *a: None
    )


def _run_until(p: Pipeline, frames: int) -> None:
    """Wait until ``frames`` are inspected; a pipeline that stopped early fails the variant."""
    while p.counters.inspected < frames and p.failure is None:
        time.sleep(0.005)
    if p.failure is not None:  # a figure from a pipeline that stopped early would flatter it
        p.stop()
        raise SystemExit(f"the pipeline stopped after {p.counters.inspected} frames: {p.failure}")


def _pipeline(cfg: AgentConfig, factory: Any, frames: int) -> tuple[Pipeline, dict[str, Any]]:
    """Run the pipeline for ``frames`` inspections; it and the rate measured up to that point."""
    p = _build_pipeline(cfg, factory)
    p.start()
    start = time.perf_counter()
    _run_until(p, frames)
    rate = _rate(p.counters.inspected, time.perf_counter() - start)  # before stop() drains the queue
    p.stop()
    return p, rate


def pipeline(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    replay = _replay_config(cfg)
    p, rate = _pipeline(replay, lambda: open_source(replay.camera, replay.base_dir), frames)
    totals = p.latency.percentiles()
    return rate | {"latency_ms": totals.get("total", {}), "stages": totals}


class MemoryCamera:
    """A live camera stand-in: decoded frames from the clip, delivered at a fixed rate, newest only."""

    live = True
    description = "memory camera"

    def __init__(self, images: list[np.ndarray], fps: float) -> None:
        self._images = images
        self._period = 1.0 / fps
        self._next = time.monotonic()
        self._seq = 0

    def open(self) -> None:
        self._next = time.monotonic()

    def read(self) -> Frame | None:
        self._next += self._period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        frame = Frame(self._images[self._seq % len(self._images)], self._seq, int(time.time() * 1000), now)
        self._seq += 1
        return frame

    def close(self) -> None:
        pass


def _decoded(cfg: AgentConfig, n: int = 32) -> list[np.ndarray]:
    src: FrameSource = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    images = [_read(src).image for _ in range(n)]
    src.close()
    return images


def inspection_capacity(cfg: AgentConfig, images: list[np.ndarray], runs: int = 100) -> float:
    """Frames per second the naive loop inspects once frames are decoded (the model-side limit)."""
    model = _model(cfg)
    sink, topic = NullSink(), Topics.from_config(cfg).result
    start = time.perf_counter()
    for i in range(runs):
        frame = Frame(images[i % len(images)], i, int(time.time() * 1000), time.monotonic())
        _naive_step(cfg, model, frame, sink, topic)
    return runs / (time.perf_counter() - start)


def overload_pipeline(cfg: AgentConfig, frames: int, factor: float) -> dict[str, Any]:
    images = _decoded(cfg)
    fps = factor * inspection_capacity(cfg, images)
    live = dataclasses.replace(cfg, camera=dataclasses.replace(cfg.camera, live=True, realtime=True))
    object.__setattr__(live, "base_dir", cfg.base_dir)
    p, rate = _pipeline(live, lambda: MemoryCamera(images, fps), frames)
    c = p.counters
    return {
        "offered_fps": fps,
        **rate,
        "age_ms": p.latency.percentiles().get("total", {}),
        "dropped": c.dropped,
        "stale": c.stale,
    }


def overload_naive(cfg: AgentConfig, frames: int, factor: float) -> dict[str, Any]:
    """The naive loop behind a camera that buffers every frame (as a plain queue does): ages grow."""
    images = _decoded(cfg)
    fps = factor * inspection_capacity(cfg, images)
    model = _model(cfg)
    camera = MemoryCamera(images, fps)
    buffered: queue.Queue[Frame] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            buffered.put(camera.read())  # type: ignore[arg-type]

    threading.Thread(target=produce, daemon=True).start()
    sink, topic = NullSink(), Topics.from_config(cfg).result
    start = time.perf_counter()
    ages = [_naive_step(cfg, model, buffered.get(), sink, topic) for _ in range(frames)]
    elapsed = time.perf_counter() - start
    stop.set()
    first, last = ages[: len(ages) // 10], ages[-len(ages) // 10 :]
    return {
        "offered_fps": fps,
        **_rate(len(ages), elapsed),
        "age_ms": _ms(ages),
        "age_first_tenth_ms": _ms(first),
        "age_last_tenth_ms": _ms(last),
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    """RSS growth of the pipeline over a long replay: measured after a warm-up tenth and at the end."""
    replay = _replay_config(cfg)
    p = _build_pipeline(replay, lambda: open_source(replay.camera, replay.base_dir))
    p.start()
    warm = max(1, frames // 10)
    _run_until(p, warm)
    start_rss, start, done = _rss_mb(), time.perf_counter(), p.counters.inspected
    _run_until(p, frames)
    inspected, elapsed, end_rss = p.counters.inspected, time.perf_counter() - start, _rss_mb()
    p.stop()
    return {
        **_rate(inspected - done, elapsed),  # the rate after warm-up
        "inspected": inspected,
        "rss_after_warmup_mb": round(start_rss, 1),
        "rss_end_mb": round(end_rss, 1),
        "rss_growth_mb": round(end_rss - start_rss, 2),
        "latency_ms": {},
    }


VARIANTS = {
    "soak": soak,
    "invoke": invoke,
    "source": source,
    "naive": naive,
    "pipeline": pipeline,
}
OVERLOAD = {"overload-pipeline": overload_pipeline, "overload-naive": overload_naive}
