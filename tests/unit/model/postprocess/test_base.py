"""Dequantization and activations shared by every task's postprocessor."""

from __future__ import annotations

import numpy as np
import pytest

from agent.model.postprocess.base import dequantize, sigmoid, softmax
from agent.runtimes.base import TensorSpec


@pytest.mark.parametrize(
    ("dtype", "scale", "zero", "raw", "expected"),
    [
        (np.uint8, 1 / 256, 0, [0, 128, 255], [0.0, 0.5, 255 / 256]),
        (np.int8, 1 / 256, -128, [-128, 0, 127], [0.0, 0.5, 255 / 256]),
        (np.int8, 0.25, 3, [3, 7, -1], [0.0, 1.0, -1.0]),
    ],
)
def test_dequantize_uses_each_tensors_scale_and_zero_point(
    dtype: type, scale: float, zero: int, raw: list[int], expected: list[float]
) -> None:
    spec = TensorSpec("t", (3,), np.dtype(dtype), scale, zero)
    out = dequantize(np.array(raw, dtype), spec)
    assert out.dtype == np.float32 and out.tolist() == pytest.approx(expected)


def test_float_outputs_pass_through_and_float16_widens() -> None:
    spec = TensorSpec("t", (2,), np.dtype(np.float16))
    out = dequantize(np.array([0.5, 2.0], np.float16), spec)
    assert out.dtype == np.float32 and out.tolist() == [0.5, 2.0]
    assert not TensorSpec(
        "t", (1,), np.dtype(np.float32), scale=0.5
    ).quantized  # a float tensor is never quantized


def test_activations() -> None:
    assert softmax(np.array([0.0, 0.0], np.float32)).tolist() == [0.5, 0.5]
    assert softmax(np.array([1000.0, 0.0], np.float32))[0] == pytest.approx(1.0)  # no overflow
    assert sigmoid(np.array([0.0], np.float32)).tolist() == [0.5]
