"""onnxruntime adapter on the committed fixture models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ModelError, RuntimeMissingError
from agent.runtimes.onnx import OnnxRuntime
from tests.unit.model.packages import FIXTURES


def test_dynamic_dimensions_are_none_and_any_size_runs() -> None:
    rt = OnnxRuntime(FIXTURES / "cls_dyn.onnx")
    assert rt.inputs[0].shape == (None, 3, None, None) and rt.outputs[0].shape == (None, 3)
    rt.set_input_shape((1, 3, 24, 40))
    for h, w in ((24, 40), (7, 300)):
        (out,) = rt.run(np.zeros((1, 3, h, w), np.float32))
        assert out.shape == (1, 3)
    rt.close()


def test_float16_inputs_and_outputs() -> None:
    rt = OnnxRuntime(FIXTURES / "cls_f16.onnx")
    assert rt.inputs[0].dtype == np.float16 and rt.outputs[0].dtype == np.float16
    (out,) = rt.run(np.full((1, 3, 8, 8), 0.5, np.float16))
    assert out.dtype == np.float16


def test_qdq_model_keeps_float_io_and_is_not_marked_quantized() -> None:
    rt = OnnxRuntime(FIXTURES / "cls_qdq.onnx")
    assert rt.inputs[0].dtype == np.float32 and not rt.inputs[0].quantized


def test_missing_providers(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RuntimeMissingError, match="none of the configured onnxruntime providers"):
        OnnxRuntime(FIXTURES / "cls_dyn.onnx", providers=["NoSuchExecutionProvider"])
    rt = OnnxRuntime(FIXTURES / "cls_dyn.onnx", providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])
    assert rt.providers == ("CPUExecutionProvider",)


def test_not_a_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("hello")
    with pytest.raises(ModelError, match=r"bad\.onnx is not a loadable ONNX model"):
        OnnxRuntime(bad)


def test_onnxruntime_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeMissingError, match=r"\[onnx\]"):
        OnnxRuntime(FIXTURES / "cls_dyn.onnx")
