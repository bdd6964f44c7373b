"""Preprocessing on the capture thread: a tensor per job, and a hot swap never feeds a stale shape."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture.base import Frame
from agent.config.schema import ModelConfig
from agent.model.loaded import LoadedModel, load_model
from agent.pipeline.prepare import Placement, Preparer, prepare_for
from agent.pipeline.swap import ModelSlot
from tests.support.models import make_package, slow_classifier
from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package


def _model(root: Path, width: int, height: int) -> LoadedModel:
    onnx = slow_classifier(root.parent / f"{root.name}.onnx", 1, width=width, height=height)
    pkg = make_package(root, onnx, name="m", version=f"{width}x{height}", labels=["ok", "a", "b"],
                       width=width, height=height)  # fmt: skip
    return load_model(str(pkg), ModelConfig(path=str(pkg), runtime="onnx", warmup_runs=0))


def _slot(model: LoadedModel, tmp_path: Path) -> ModelSlot:
    return ModelSlot(
        model,
        loader=lambda _p: model,
        model_path=tmp_path / "pkg",
        state_file=tmp_path / "model-state.json",
        emit=lambda _e: None,
        watch_frames=5,
        overrun_ratio=0.5,
    )


def _frame(level: int, seq: int = 0) -> Frame:
    return Frame(np.full((120, 160, 3), level, np.uint8), seq=seq, ts_ms=0, mono=time.monotonic())


def test_jobs_in_flight_each_have_their_own_tensor_and_released_ones_are_reused(tmp_path: Path) -> None:
    model = _model(tmp_path / "a", 32, 32)
    prepare = Preparer(_slot(model, tmp_path))
    first, second = prepare(_frame(0)), prepare(_frame(255))
    assert first is not None and second is not None
    assert first.tensor is not second.tensor  # the second frame did not overwrite the first
    np.testing.assert_array_equal(first.tensor, model.preprocess(_frame(0).image)[0])
    np.testing.assert_array_equal(second.tensor, model.preprocess(_frame(255).image)[0])
    assert first.model is model and first.tensor.shape == (1, 32, 32, 3)
    first.release()
    third = prepare(_frame(128))
    assert third is not None and third.tensor is first.tensor  # no allocation once the line runs
    assert prepare_for(model, _frame(128), third) is third  # made for the running model: used as is


def test_a_job_prepared_before_a_swap_is_prepared_again_for_the_new_model(tmp_path: Path) -> None:
    old, new = _model(tmp_path / "old", 32, 32), _model(tmp_path / "new", 48, 40)
    slot = _slot(old, tmp_path)
    prepare = Preparer(slot)
    frame = _frame(200)
    prepared = prepare(frame)
    assert prepared is not None and prepared.tensor.shape == (1, 32, 32, 3)
    slot.set_fallback(new)
    slot.use_fallback(True)
    assert slot.take() is new  # the swap lands between capture and invoke
    again = prepare_for(new, frame, prepared)
    assert again.model is new and again.tensor.shape == (1, 40, 48, 3)
    np.testing.assert_array_equal(again.tensor, new.preprocess(frame.image)[0])
    assert frame.view is not None and frame.view.shape == (40, 48, 3)  # observers see the new model's view
    assert new.run(again.tensor)[0].shape == (1, 3)
    later = prepare(_frame(10))
    assert later is not None and later.model is new and later.tensor.shape == (1, 40, 48, 3)


def test_a_frame_that_cannot_be_prepared_on_the_capture_thread_fails_on_the_inference_thread(
    tmp_path: Path,
) -> None:
    model = _model(tmp_path / "a", 32, 32)
    bad = Frame(np.zeros((0, 0, 3), np.uint8), seq=0, ts_ms=0, mono=time.monotonic())
    assert Preparer(_slot(model, tmp_path))(bad) is None  # the capture thread goes on
    with pytest.raises(cv2.error):  # reported per frame by the inference thread, as before
        prepare_for(model, bad, None)


def test_preprocessing_goes_to_the_capture_thread_only_while_decoding_is_the_lighter_stage() -> None:
    placement = Placement()
    for _ in range(100):
        placement.note_read(0.5)  # a small frame, decoded cheaply
        placement.note_invoke(8.0)  # a real-sized model
    assert placement.on_capture  # the inference thread only invokes
    for _ in range(100):
        placement.note_read(4.0)  # a camera switched to full HD: decoding is now the bottleneck
        placement.note_invoke(0.1)
    assert not placement.on_capture  # preprocessing beside the invoke keeps the line at decode speed


@pytest.mark.parametrize(
    ("iterations", "size", "on_capture"),
    [(400, (160, 120), True), (1, (1920, 1080), False)],
    ids=["invoke-bound", "decode-bound"],
)
def test_the_running_pipeline_prepares_frames_where_the_load_is_lighter(
    build: Callable[..., Harness],
    tmp_path: Path,
    iterations: int,
    size: tuple[int, int],
    on_capture: bool,
) -> None:
    """A ~1 ms model on small PNGs: the capture thread preprocesses. A ~20 µs model on full-HD
    PNGs (several ms to decode): the inference thread does. Either way every frame is inspected."""
    frames = frames_dir(tmp_path / "frames", 30, size)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", iterations, budget_ms=1000))
    h.pipeline.start()
    assert h.run_until(h.pipeline.done.is_set, 60)
    h.pipeline.stop()
    assert h.pipeline.counters.inspected == 30 and h.pipeline.counters.errors == 0
    assert h.pipeline.placement.on_capture is on_capture
