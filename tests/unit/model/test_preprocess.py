"""The preallocated, resize-first preprocessing equals the straightforward reference, number for number.

The reference is the obvious per-frame code (convert the whole frame's colour, resize, then
``x * a + b`` on a fresh float array, round, clip, cast, transpose): the shipped Preprocessor
reorders and preallocates for speed, and must not change a single input value.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config.schema import ModelConfig
from agent.model.loaded import load_model
from agent.model.manifest import InputSpec
from agent.model.preprocess import _RESIZERS, Preprocessor
from agent.runtimes.base import TensorSpec
from agent.synthetic import LABELS, render_part
from tests.support.paths import DEMO_MODEL

_COLOR = {"BGR": None, "RGB": cv2.COLOR_BGR2RGB, "GRAY": cv2.COLOR_BGR2GRAY}


def reference(frame: np.ndarray, spec: InputSpec, tensor: TensorSpec) -> np.ndarray:
    code = _COLOR[spec.color]
    image = frame if code is None else cv2.cvtColor(frame, code)
    resized, _ = _RESIZERS[spec.resize](image, spec)
    hwc = resized.reshape(spec.height, spec.width, spec.channels).astype(np.float32)
    std = np.resize(np.asarray(spec.std, np.float32), spec.channels)
    mean = np.resize(np.asarray(spec.mean, np.float32), spec.channels)
    a, b = spec.scale / std, -mean / std
    if tensor.quantized:
        a, b = a / tensor.scale, b / tensor.scale + tensor.zero_point
    x = hwc * a.astype(np.float32) + b.astype(np.float32)
    if np.issubdtype(tensor.dtype, np.integer):
        info = np.iinfo(tensor.dtype.type)  # type: ignore[type-var]
        x = np.clip(np.rint(x), info.min, info.max)
    x = x.astype(tensor.dtype)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis])


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    gradient = np.dstack([np.tile(np.arange(640, dtype=np.uint8), (480, 1))] * 3)
    small = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)  # upscaled: INTER_LINEAR
    return [noise, gradient, np.ascontiguousarray(gradient[:, ::-1]), small]


CASES = [
    (color, resize, layout, dtype, quant)
    for color in ("RGB", "BGR", "GRAY")
    for resize in ("stretch", "letterbox", "center_crop")
    for layout in ("NHWC", "NCHW")
    for dtype, quant in ((np.float32, (0.0, 0)), (np.int8, (1 / 255, -128)), (np.uint8, (1 / 255, 0)))
]


@pytest.mark.parametrize(("color", "resize", "layout", "dtype", "quant"), CASES)
def test_fused_preprocessing_equals_the_reference(
    color: str, resize: str, layout: str, dtype: type, quant: tuple[float, int]
) -> None:
    spec = InputSpec(
        width=48,
        height=32,
        color=color,
        resize=resize,
        layout=layout,
        mean=[0.1],
        std=[0.5],  # type: ignore[arg-type]
    )
    c = spec.channels
    shape = (1, c, 32, 48) if layout == "NCHW" else (1, 32, 48, c)
    tensor = TensorSpec("x", shape, np.dtype(dtype), scale=quant[0], zero_point=quant[1])
    pre = Preprocessor(spec, tensor)
    for frame in frames():
        got, _ = pre(frame)
        np.testing.assert_array_equal(got, reference(frame, spec, tensor))


def test_the_returned_tensor_is_reused_and_the_view_is_not() -> None:
    """The tensor is the model's (overwritten next frame); the view goes to observers, so it is fresh."""
    spec = InputSpec(width=16, height=16, color="RGB")
    pre = Preprocessor(spec, TensorSpec("x", (1, 16, 16, 3), np.dtype(np.float32)))
    a, _ = pre(np.zeros((48, 64, 3), np.uint8))
    view_a = pre.view
    b, _ = pre(np.full((48, 64, 3), 255, np.uint8))
    assert a is b
    assert view_a is not None and int(view_a.max()) == 0


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_a_given_out_tensor_is_written_and_a_fork_has_its_own_buffers(layout: str) -> None:
    """The pipeline prepares each queued frame into its own tensor on the capture thread."""
    spec = InputSpec(width=16, height=12, color="RGB", layout=layout)
    shape = (1, 3, 12, 16) if layout == "NCHW" else (1, 12, 16, 3)
    pre = Preprocessor(spec, TensorSpec("x", shape, np.dtype(np.int8), scale=1 / 255, zero_point=-128))
    frame = frames()[0]
    own, _ = pre(frame)
    out = pre.new_tensor()
    got, _ = pre(frame, out)
    assert got is out and got is not own and got.shape == shape
    np.testing.assert_array_equal(got, reference(frame, spec, pre.tensor))
    fork = pre.fork()
    forked, _ = fork(frames()[1])
    assert forked is not own and fork.view is not pre.view
    np.testing.assert_array_equal(own, reference(frame, spec, pre.tensor))  # untouched by the fork


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_demo_model_input_equals_the_reference_on_the_fixture_frames(runtime: str) -> None:
    model = load_model(str(DEMO_MODEL), ModelConfig(path=str(DEMO_MODEL), runtime=runtime))
    golden = sorted(Path(DEMO_MODEL, "golden").rglob("*.png"))[:20]
    images = [cv2.imread(str(p)) for p in golden] or frames()
    for image in [*images, *frames()]:
        got, _ = model.preprocess(image)
        np.testing.assert_array_equal(got, reference(image, model.preprocess.spec, model.preprocess.tensor))


def test_a_big_area_downscale_halves_exactly_first_and_stays_close_to_one_resize() -> None:
    """640x480 -> 96x96 goes through one exact 2x2 halving (issue 20: 4x cheaper than one
    non-integer INTER_AREA). On camera-like frames (rendered parts, gradients) 99 % of the input
    is within 3 grey levels of the one-step resize and the mean within 1 (sharp edges and pixel
    noise differ more), which is why the demo model's accuracy was measured with ``model
    evaluate`` on 640x480 parts: unchanged (README "Measured")."""
    spec = InputSpec(width=96, height=96, color="GRAY")
    pre = Preprocessor(spec, TensorSpec("x", (1, 96, 96, 1), np.dtype(np.uint8), scale=1 / 255))
    rng = np.random.default_rng(5)
    parts = [render_part(rng, label, 640, 480) for label in LABELS]
    for frame in [*parts, *frames()[1:3]]:
        pre(frame)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        half = cv2.resize(gray, (320, 240), interpolation=cv2.INTER_AREA)
        two_step = cv2.resize(half, (96, 96), interpolation=cv2.INTER_AREA)
        one_step = cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA)
        assert pre.view is not None
        np.testing.assert_array_equal(pre.view, two_step)
        diff = np.abs(pre.view.astype(int) - one_step)
        assert float(np.percentile(diff, 99)) <= 3
        assert float(diff.mean()) <= 1


@pytest.mark.parametrize("size", [(224, 224), (320, 320), (200, 130)])
def test_a_moderate_downscale_is_one_area_resize(size: tuple[int, int]) -> None:
    """Below 4x on either axis the halving would cost more accuracy than it saves: one resize."""
    w, h = size
    spec = InputSpec(width=w, height=h, color="RGB")
    pre = Preprocessor(spec, TensorSpec("x", (1, h, w, 3), np.dtype(np.uint8), scale=1 / 255))
    frame = frames()[0]
    pre(frame)
    direct = cv2.cvtColor(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(pre.view, direct)
