"""Preprocessing on the capture thread, so the inference thread only invokes (issue 20).

With a real-sized model the resize and normalisation of a camera frame cost a third to half of
an invoke; done on the inference thread they cap the line at ``1 / (preprocess + invoke)``.
Done right after decode on the capture thread (OpenCV releases the GIL), they overlap the
invoke of the frame before.

Each job carries its own input tensor: jobs queue between the two threads, so one shared
buffer would be overwritten under a job waiting or in flight. Tensors come from a small free
list per model, refilled when the inference thread is done with one, so nothing is allocated
per frame once the line runs; a job dropped as stale or skipped gives its tensor back, one
replaced in the live one-slot hand-off leaves it to the garbage collector.

Where preprocessing pays depends on which thread is the bottleneck. With a real-sized model the
invoke is; with a small one decoding is, and preprocessing on the capture thread would then slow
the whole line down to decode + preprocess (the defect storm measured 0.86 of that stage instead
of 1.10 with preprocessing beside the invoke). :class:`Placement` keeps the capture thread's CPU
per read and the invoke time, each averaged, and preprocessing goes to the capture thread only
while decoding is the lighter of the two (which minimises the slower thread's load); otherwise
the inference thread prepares the frame, as :func:`prepare_for` does for any unprepared job.

A job is prepared for the model running when it was captured. A hot swap can land between
capture and invoke: the inference thread then sees the job was prepared for another model and
prepares it again with the new model's own preprocessor, so a tensor of the old shape never
reaches the new model. Triggered frames and frames whose preprocessing failed here are
prepared the same way on the inference thread (which reports the error as before).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np

from agent.capture.base import Frame
from agent.model.loaded import LoadedModel
from agent.model.preprocess import Preprocessor, Transform
from agent.pipeline.swap import ModelSlot


@dataclass(slots=True)
class _Tensors:
    """One model's capture-side preprocessor and its free input tensors."""

    model: LoadedModel
    pre: Preprocessor
    free: collections.deque[np.ndarray] = field(default_factory=collections.deque)

    def take(self) -> np.ndarray:
        try:
            return self.free.pop()  # deque pop/append are atomic: the other end is the inference thread
        except IndexError:
            return self.pre.new_tensor()


@dataclass(slots=True)
class Prepared:
    """A frame turned into an input tensor for ``model`` (set on the capture thread)."""

    model: LoadedModel
    tensor: np.ndarray
    transform: Transform
    ms: float
    owner: _Tensors | None  # where the tensor goes back after the invoke (None: not pooled)

    def release(self) -> None:
        if self.owner is not None:
            self.owner.free.append(self.tensor)
            self.owner = None


_SMOOTHING = 0.05  # weight of the newest frame in the running averages (~20 frames)


class Placement:
    """Which thread preprocesses: the capture thread while it is the less loaded one.

    Written by one thread each (the capture thread notes its reads, the inference thread its
    invokes); a float assignment is atomic, and a stale read only moves one frame's work."""

    def __init__(self) -> None:
        self.read_ms = 0.0  # capture thread CPU per read (decode); waiting for a camera is not load
        self.invoke_ms = 0.0

    def note_read(self, ms: float) -> None:
        self.read_ms += (ms - self.read_ms) * _SMOOTHING

    def note_invoke(self, ms: float) -> None:
        self.invoke_ms += (ms - self.invoke_ms) * _SMOOTHING

    @property
    def on_capture(self) -> bool:
        return self.read_ms < self.invoke_ms


class Preparer:
    """The capture thread's preprocessing; one per capture thread (a preprocessor is not thread-safe)."""

    def __init__(self, slot: ModelSlot) -> None:
        self._slot = slot
        self._tensors: _Tensors | None = None

    def __call__(self, frame: Frame) -> Prepared | None:
        """``frame`` prepared for the running model; None when that fails (the inference thread retries)."""
        model = self._slot.model
        tensors = self._tensors
        if tensors is None or tensors.model is not model:
            tensors = self._tensors = _Tensors(model, model.preprocess.fork())
        out = tensors.take()
        t0 = time.monotonic()
        try:
            tensor, transform = tensors.pre(frame.image, out)
        except Exception:  # a bad frame: the inference thread prepares it again and reports the error
            return None
        frame.view = tensors.pre.view
        return Prepared(model, tensor, transform, (time.monotonic() - t0) * 1000.0, tensors)


def prepare_for(model: LoadedModel, frame: Frame, prepared: Prepared | None) -> Prepared:
    """On the inference thread: ``prepared`` if it was made for ``model``, else ``frame`` prepared now.

    Raises what the model's preprocessing raises on a bad frame.
    """
    if prepared is not None and prepared.model is model:
        return prepared
    if prepared is not None:
        prepared.release()  # made for the model before a swap: its tensor has the old shape
    t0 = time.monotonic()
    tensor, transform = model.preprocess(frame.image)
    frame.view = model.preprocess.view
    return Prepared(model, tensor, transform, (time.monotonic() - t0) * 1000.0, None)
