"""Int8 export (full-integer TFLite, QDQ ONNX) and runners that feed the results as the agent does.

Both int8 models are calibrated on the same representative images drawn from the training
split; both take the float model's input shape ``[1, H, W, C]`` (NHWC), as the manifest says.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import InputSpec
from agent.train import backend
from agent.train.model import to_input

NUM_THREADS = os.cpu_count() or 1


def representative(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A class-agnostic random subset of training images for calibrating the int8 ranges."""
    rng = np.random.default_rng([seed, 13])
    return images[rng.permutation(len(images))[:count]]


def export_tflite(model: Any, calibration: np.ndarray, spec: InputSpec, path: Path) -> None:
    """Full-integer TFLite: int8 weights, activations, input and output; batch 1, as the agent runs it."""
    tf = backend.tensorflow()
    x = to_input(calibration, spec)
    signature = tf.TensorSpec([1, *x.shape[1:]], tf.float32, name="image")

    def samples() -> Iterator[list[np.ndarray]]:
        for img in x:
            yield [img[None]]

    with (
        tempfile.TemporaryDirectory() as tmp
    ):  # a SavedModel freezes the weights; a live tf.function would not
        model.export(tmp, format="tf_saved_model", input_signature=[signature], verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        try:
            path.write_bytes(converter.convert())
        except Exception as exc:  # the converter raises ConverterError and plain Exceptions
            raise ModelError(f"int8 TFLite conversion failed: {str(exc).splitlines()[0]}") from exc


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a batch of preprocessed images."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int = 32) -> None:
        self._batches = iter([{input_name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def export_onnx(model: Any, calibration: np.ndarray, spec: InputSpec, path: Path) -> None:
    """Float ONNX via Keras/tf2onnx, then static int8 QDQ quantization (float input and output)."""
    onnx, quantization = backend.onnx_tools()
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        float_path, prep_path = Path(tmp) / "float.onnx", Path(tmp) / "prep.onnx"
        with warnings.catch_warnings():  # Keras' tf2onnx shim probes np.object, which warns on numpy 2
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            model.export(str(float_path), format="onnx", verbose=False)
        quant_pre_process(str(float_path), str(prep_path), skip_symbolic_shape=True)
        input_name = onnx.load(str(prep_path)).graph.input[0].name
        quantization.quantize_static(
            str(prep_path),
            str(path),
            _Calibration(input_name, to_input(calibration, spec)),
            quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
        )
    quantized = onnx.load(str(path))
    canonical_names(quantized)
    onnx.save(quantized, str(path))


_AUTO_NUMBER = re.compile(r"__(\d+)")


def canonical_names(model: Any) -> None:
    """Renumber tf2onnx's generated names (``..._Squeeze__50``) in graph order, in place.

    tf2onnx numbers the nodes it creates from a global counter whose value
    depends on set iteration order, so two exports of the same weights differ in
    names only. Renumbering every ``__N`` consistently (a bijection, so names stay
    unique) by first appearance makes the bytes, and the manifest's sha256, repeatable.
    """
    numbers: dict[str, str] = {}

    def renumber(name: str) -> str:
        return _AUTO_NUMBER.sub(lambda m: "__" + numbers.setdefault(m.group(1), str(len(numbers))), name)

    graph = model.graph
    for node in graph.node:
        node.name = renumber(node.name)
        node.input[:] = [renumber(n) for n in node.input]
        node.output[:] = [renumber(n) for n in node.output]
    for item in [*graph.initializer, *graph.input, *graph.output, *graph.value_info]:
        item.name = renumber(item.name)


class TfliteRunner:
    """Runs the int8 TFLite model the way the agent does: quantize with the tensor's own scale/zero point."""

    def __init__(self, path: Path, spec: InputSpec) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._spec = spec
        self._interp = Interpreter(model_path=str(path), num_threads=NUM_THREADS)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        in_scale, in_zp = self._in["quantization"]
        out_scale, out_zp = self._out["quantization"]
        info = np.iinfo(self._in["dtype"])
        rows = []
        for x in to_input(images, self._spec):
            q = np.clip(np.round(x / in_scale + in_zp), info.min, info.max).astype(self._in["dtype"])
            self._interp.set_tensor(self._in["index"], q[None])
            self._interp.invoke()
            out = self._interp.get_tensor(self._out["index"])[0]
            rows.append((out.astype(np.float64) - out_zp) * out_scale)
        return np.stack(rows)


class OnnxRunner:
    """Runs the QDQ ONNX model on float NHWC input, as the agent's onnxruntime backend does."""

    def __init__(self, path: Path, spec: InputSpec) -> None:
        import onnxruntime as ort

        self._spec = spec
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = NUM_THREADS
        self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._name = self._sess.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        outs = [
            self._sess.run(None, {self._name: to_input(images[i : i + 256], self._spec)})[0]
            for i in range(0, len(images), 256)
        ]
        return np.concatenate(outs).astype(np.float64)
