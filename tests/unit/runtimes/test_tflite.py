"""LiteRT/TFLite adapter on the committed fixture models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ModelError, RuntimeMissingError
from agent.runtimes.tflite import TFLiteRuntime
from tests.unit.model.packages import FIXTURES


def test_quantized_tensors_expose_scale_and_zero_point() -> None:
    rt = TFLiteRuntime(FIXTURES / "cls_i8.tflite")
    (inp,), (out,) = rt.inputs, rt.outputs
    assert inp.shape == (1, 32, 32, 3) and inp.dtype == np.int8 and inp.quantized and inp.zero_point == -128
    assert out.dtype == np.int8 and out.scale == pytest.approx(1 / 256)
    (result,) = rt.run(np.zeros((1, 32, 32, 3), np.int8))
    assert result.shape == (1, 3) and result.dtype == np.int8
    rt.close()


def test_float16_input_and_the_four_ssd_outputs() -> None:
    assert TFLiteRuntime(FIXTURES / "cls_f16.tflite").inputs[0].dtype == np.float16
    ssd = TFLiteRuntime(FIXTURES / "det_ssd.tflite")
    assert sorted(o.shape for o in ssd.outputs) == [(1,), (1, 10), (1, 10), (1, 10, 4)]
    outputs = ssd.run(np.ones((1, 64, 64, 3), np.float32))
    assert len(outputs) == 4


def test_results_stay_valid_after_the_next_invoke() -> None:
    rt = TFLiteRuntime(FIXTURES / "cls_u8.tflite")
    first = rt.run(np.zeros((1, 32, 32, 3), np.uint8))[0].copy()
    kept = rt.run(np.zeros((1, 32, 32, 3), np.uint8))[0]
    rt.run(np.full((1, 32, 32, 3), 255, np.uint8))
    assert np.array_equal(first, kept)


def test_static_input_cannot_be_resized() -> None:
    rt = TFLiteRuntime(FIXTURES / "cls_u8.tflite")
    rt.set_input_shape((1, 32, 32, 3))  # same shape: nothing to do
    with pytest.raises(ModelError, match="cannot set TFLite input shape"):
        rt.set_input_shape((1, 64, 64, 3))


def test_not_a_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=r"bad\.tflite is not a loadable TFLite model"):
        TFLiteRuntime(bad)


def test_no_interpreter_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(RuntimeMissingError, match=r"\[tflite\]"):
        TFLiteRuntime(FIXTURES / "cls_u8.tflite")


def test_dynamic_input_is_allocated_at_the_size_asked_for() -> None:
    rt = TFLiteRuntime(FIXTURES / "cls_dyn.tflite")  # its 1x1 placeholder size cannot even be prepared
    assert rt.inputs[0].shape == (1, None, None, 3)
    for h, w in ((24, 40), (64, 64)):
        rt.set_input_shape((1, h, w, 3))
        (out,) = rt.run(np.zeros((1, h, w, 3), np.float32))
        assert out.shape == (1, 3)
