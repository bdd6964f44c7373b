"""``inspection-agent drift calibrate``: learn the drift baseline from the line, offline, once.

``drift.baseline: learn`` lets the agent learn its reference from its first windows on a
model; a technician who knows the line is healthy *now* (new lighting installed, the camera
re-aimed) wants to re-baseline on purpose instead. Calibration runs the configured camera
through the configured model exactly as the monitor records a window (same recorder, same
top-1, the model's own view for the image statistics) for ``windows`` windows, and writes the
same ``{state.dir}/drift-baseline.json`` the agent would have learned, for the same model. The
running agent reads it when it (re)starts.

The agent must not hold the camera meanwhile (stop it, or calibrate from a recorded clip).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.capture import open_source
from agent.config.schema import AgentConfig
from agent.drift import baseline
from agent.drift.baseline import Learner
from agent.drift.reference import parse_reference
from agent.drift.window import recorder_for, top1
from agent.errors import CameraError, ConfigError
from agent.model.loaded import LoadedModel, load_model

Progress = Callable[[int, int], None]  # (windows done, windows needed)
MAX_MISSES = 50  # a live camera's reads that timed out in a row before calibration gives up


@dataclass(frozen=True, slots=True)
class Calibration:
    path: Path
    frames: int
    document: dict[str, Any]


def calibrate(cfg: AgentConfig, windows: int, progress: Progress | None = None) -> Calibration:
    """Record ``windows`` windows of the configured camera and store them as the drift baseline."""
    if windows < 2:
        raise ConfigError(f"--windows {windows}: at least 2 windows make a baseline")
    if cfg.drift.baseline != "learn":
        raise ConfigError(
            "drift.baseline is 'manifest': the agent would ignore a calibrated baseline; "
            "set drift.baseline: learn in the config first"
        )
    model = load_model(str(cfg.resolve(cfg.model.path)), cfg.model_settings())
    try:
        block, frames = _record(cfg, model, windows, progress)
        parse_reference(block, tuple(model.package.labels), cfg.drift.class_mix or None)  # as the agent will
        doc = baseline.document(model.summary, block, windows)
    finally:
        model.close()
    path = cfg.state_dir / baseline.FILE
    baseline.save(path, doc)
    return Calibration(path, frames, doc)


def _record(
    cfg: AgentConfig, model: LoadedModel, windows: int, progress: Progress | None
) -> tuple[dict[str, Any], int]:
    labels = tuple(model.package.labels)
    index = {label: i for i, label in enumerate(labels)}
    recorder = recorder_for(model.package.manifest.input, cfg.drift)
    learner = Learner(labels, windows)
    source = open_source(cfg.camera, cfg.base_dir)
    source.open()
    frames = misses = 0
    try:
        while True:
            frame = source.read()
            if frame is None and source.live and misses < MAX_MISSES:
                misses += 1  # a live camera's read timed out; a few in a row are normal
                continue
            if frame is None:
                needed = windows * cfg.drift.window
                raise CameraError(
                    f"{source.description} ended after {frames} frames; {windows} windows of "
                    f"{cfg.drift.window} need {needed} (loop the clip, or lower --windows or drift.window)"
                )
            frames, misses = frames + 1, 0
            label, confidence = top1(model.infer(frame.image))
            view = model.preprocess.view
            window = recorder.add(confidence, index.get(label, len(labels)), frame.image, frame.ts_ms, view)
            if window is None:
                continue
            block = learner.add(window)
            if progress is not None:
                progress(learner.seen, windows)
            if block is not None:
                return block, frames
    finally:
        source.close()
