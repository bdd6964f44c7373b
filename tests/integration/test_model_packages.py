"""Every fixture model through the agent's ``load_model(...).infer`` against a direct runtime call.

The reference side preprocesses independently (OpenCV resize + numpy scaling and
quantization) and calls ``ai_edge_litert.interpreter.Interpreter`` or
``onnxruntime.InferenceSession`` itself. Tolerances: int8/uint8 outputs within two
output quantization steps (2 x scale, about 0.008 for a softmax), float16 within
2e-3, float32 within 1e-5. Detection and anomaly fixtures compute their outputs
from the input in a known way, so their boxes and scores are checked exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config.schema import ModelConfig
from agent.model.loaded import LoadedModel, load_model
from agent.model.validate import validate_package
from tests.unit.model.packages import DEMO, FIXTURE_MANIFESTS, FIXTURES, golden_dir, manifest_for_pack

pytestmark = pytest.mark.integration

CLASSIFIERS = [
    "cls_u8.tflite",
    "cls_i8.tflite",
    "cls_f16.tflite",
    "cls_dyn.tflite",
    "cls_dyn.onnx",
    "cls_f16.onnx",
    "cls_qdq.onnx",
]


def _load(tmp_path: Path, model: str, **overrides: Any) -> LoadedModel:
    from tests.unit.model.packages import write_package

    root = write_package(tmp_path / "pkg", model, **overrides)
    return load_model(str(root), ModelConfig(path=str(root), warmup_runs=1))


def _frame(seed: int = 0, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _reference_tensor(
    frame: np.ndarray, manifest: dict[str, Any], dtype: np.dtype[Any], q: tuple[float, int]
) -> np.ndarray:
    spec = manifest["input"]
    color = spec.get("color", "RGB")
    image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if color == "GRAY" else cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (spec["width"], spec["height"]), interpolation=cv2.INTER_AREA)
    x = image.reshape(spec["height"], spec["width"], -1).astype(np.float32) / 255.0
    scale, zero = q
    if scale:
        info = np.iinfo(dtype)
        x = np.clip(np.rint(x / scale + zero), info.min, info.max)
    x = x.astype(dtype)
    if spec.get("layout") == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis])


def _direct(model: str, frame: np.ndarray) -> tuple[np.ndarray, float]:
    """Run the fixture directly; return the dequantized first output and its quantization step."""
    manifest = FIXTURE_MANIFESTS[model]
    if model.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(FIXTURES / model))
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        tensor = _reference_tensor(frame, manifest, inp["dtype"], inp["quantization"])
        interp.resize_tensor_input(inp["index"], list(tensor.shape))  # a no-op for static inputs
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], tensor)
        interp.invoke()
        raw, (scale, zero) = interp.get_tensor(out["index"]), out["quantization"]
        values = (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)
        return values.reshape(-1), float(scale)
    import onnxruntime as ort

    session = ort.InferenceSession(str(FIXTURES / model), providers=["CPUExecutionProvider"])
    arg = session.get_inputs()[0]
    dtype = np.dtype(np.float16 if arg.type == "tensor(float16)" else np.float32)
    (raw,) = session.run(None, {arg.name: _reference_tensor(frame, manifest, dtype, (0.0, 0))})
    return raw.astype(np.float32).reshape(-1), 0.0


@pytest.mark.parametrize("model", CLASSIFIERS)
def test_classifier_matches_a_direct_runtime_call(tmp_path: Path, model: str) -> None:
    loaded = _load(tmp_path, model)
    for seed in range(3):
        frame = _frame(seed)
        result = loaded.infer(frame)
        expected, step = _direct(model, frame)
        if FIXTURE_MANIFESTS[model].get("output", {}).get("activation") == "softmax":
            expected = np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum()
        tolerance = 2 * step if step else 2e-3 if "f16" in model else 1e-5
        got = np.array(list(result.scores.values()))
        assert np.max(np.abs(got - expected)) <= tolerance, (model, got, expected)
        assert result.label == ["ok", "scratch", "dent"][int(np.argmax(got))]
    loaded.close()


def test_dynamic_dimensions_take_the_manifest_size_on_both_runtimes(tmp_path: Path) -> None:
    loaded = _load(tmp_path / "onnx", "cls_dyn.onnx")
    assert loaded.runtime.inputs[0].shape == (None, 3, None, None)
    tensor, _ = loaded.preprocess(_frame())
    assert tensor.shape == (1, 3, 24, 40)
    loaded.close()
    tfl = _load(tmp_path / "tflite", "cls_dyn.tflite")
    assert tfl.runtime.inputs[0].shape == (1, None, None, 3)
    assert tfl.preprocess(_frame())[0].shape == (1, 24, 40, 3)
    assert len(tfl.infer(_frame()).scores) == 3  # set_input_shape resized the interpreter
    tfl.close()


def test_float16_input_works_on_both_runtimes(tmp_path: Path) -> None:
    for model in ("cls_f16.tflite", "cls_f16.onnx"):
        loaded = _load(tmp_path / model, model)
        assert loaded.runtime.inputs[0].dtype == np.float16
        assert abs(sum(loaded.infer(_frame()).scores.values()) - 1.0) < 1e-2
        loaded.close()


def test_yolo_boxes_come_back_where_the_model_put_them(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "det_yolo.onnx")
    white = np.full((64, 128, 3), 255, np.uint8)  # stretch: input pixel / 64 is the frame position
    result = loaded.infer(white)
    found = [(d.label, round(d.score, 4), tuple(round(v, 4) for v in d.box)) for d in result.detections]
    assert found == [
        ("scratch", 0.9, (0.125, 0.125, 0.375, 0.375)),
        ("dent", 0.7, (0.5938, 0.5312, 0.9062, 0.7188)),
        ("dent", 0.6, (0.125, 0.125, 0.375, 0.375)),  # same box, other class: class-aware NMS keeps it
        ("scratch", 0.3, (0.0312, 0.8906, 0.125, 0.9844)),
    ]
    assert result.label == "scratch" and result.is_defect
    assert result.scores == pytest.approx({"scratch": 0.9, "dent": 0.7})
    dark = loaded.infer(np.zeros((64, 128, 3), np.uint8))
    assert dark.detections == () and dark.label == "ok" and not dark.is_defect and dark.score == 1.0
    loaded.close()


def test_ssd_postprocess_op_outputs_become_detections(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "det_ssd.tflite")
    result = loaded.infer(np.full((64, 64, 3), 255, np.uint8))
    found = [(d.label, round(d.score, 4), tuple(round(v, 4) for v in d.box)) for d in result.detections]
    assert found == [("scratch", 0.9, (0.2, 0.2, 0.4, 0.4)), ("dent", 0.8, (0.5, 0.6, 0.9, 0.8))]
    assert result.scores == pytest.approx({"scratch": 0.9, "dent": 0.8})
    assert result.is_defect
    loaded.close()


def test_anomaly_map_scores_the_worst_pixel(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "anomaly_map.tflite")
    grey = np.full((64, 64, 3), 128, np.uint8)
    calm = loaded.infer(grey)
    assert (
        calm.label == "normal"
        and not calm.is_defect
        and calm.anomaly_score == pytest.approx(1 / 255, abs=1e-4)
    )
    spot = grey.copy()
    spot[20:30, 20:30] = 255
    hot = loaded.infer(spot)
    assert hot.label == "anomaly" and hot.is_defect and hot.anomaly_score == pytest.approx(1.0, abs=1e-3)
    assert hot.scores == pytest.approx({"normal": 0.0, "anomaly": 1.0}, abs=1e-3)
    assert hot.raw is not None and hot.raw.shape == (1, 32, 32, 1)
    loaded.close()


def test_packed_detection_and_anomaly_models_validate(tmp_path: Path) -> None:
    from agent.model.pack import pack

    images = golden_dir(tmp_path / "golden")
    for model in ("det_yolo.onnx", "det_ssd.tflite", "anomaly_map.tflite", "cls_qdq.onnx"):
        out = tmp_path / model.replace(".", "-")
        pack(manifest_for_pack(model), [FIXTURES / model], out, golden=images)
        report = validate_package(out, runs=5)
        assert report.ok, [c for c in report.checks if not c.ok]


def test_demo_package_validates_on_every_runtime() -> None:
    report = validate_package(DEMO, runs=10)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert set(report.latency_ms) == set(report.model["runtimes"])
