"""The demo model: network, training, int8 export (TFLite and ONNX), runners that mimic the agent, metrics.

TensorFlow, Keras, tf2onnx and onnxruntime's quantizer are imported inside the
functions that need them, so importing this module (for the runners or the
metrics) stays cheap.
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

from scripts.demo_data import INPUT_SIZE, SCALE, Dataset, to_input

NUM_THREADS = os.cpu_count() or 1


def set_determinism(seed: int) -> None:
    """Same seed, same weights: seeds Python, numpy and TF, and asks TF for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(num_classes: int) -> Any:
    """A small CNN for 96x96 gray inputs in 0..1 (no Rescaling layer: the manifest's scale does that).

    Global max pooling next to average pooling, because a defect covers a few
    percent of the frame and its strongest response is what matters.
    """
    import keras
    from keras import layers

    def conv_bn_relu(x: Any, filters: int, strides: int = 1) -> Any:
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)  # few steps per run: let the statistics settle fast
        return layers.ReLU()(x)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="image")
    x = layers.MaxPooling2D()(conv_bn_relu(inputs, 16, strides=2))  # 24x24
    x = layers.MaxPooling2D()(conv_bn_relu(x, 32))  # 12x12
    x = layers.MaxPooling2D()(conv_bn_relu(x, 48))  # 6x6
    x = conv_bn_relu(x, 64)
    x = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="demo_defects")


def dihedral(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image flipped/transposed at random (8 symmetries): defects have no preferred orientation."""
    out = images.copy()
    ops = rng.integers(0, 8, len(images))
    for k in range(1, 8):
        sel = ops == k
        if not sel.any():
            continue
        view = out[sel]
        if k & 1:
            view = view[:, :, ::-1]
        if k & 2:
            view = view[:, ::-1, :]
        if k & 4:
            view = view.transpose(0, 2, 1, *range(3, view.ndim))
        out[sel] = view
    return out


def train(
    model: Any, train_set: Dataset, val_set: Dataset, *, epochs: int, batch_size: int, seed: int
) -> None:
    """Adam with cosine decay; a freshly augmented copy of the training images every epoch."""
    import keras

    steps = epochs * int(np.ceil(len(train_set) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=max(1, steps), alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng([seed, 11])
    val = (to_input(val_set.images), val_set.labels) if len(val_set) else None
    for epoch in range(epochs):
        x = to_input(dihedral(train_set.images, rng))
        model.fit(
            x,
            train_set.labels,
            batch_size=batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=val,
            shuffle=True,
            verbose=2,
        )


def predict_float(model: Any, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(to_input(images), batch_size=256, verbose=0), dtype=np.float64)


def representative(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A class-agnostic random subset of training inputs for calibrating the int8 ranges."""
    rng = np.random.default_rng([seed, 13])
    return images[rng.permutation(len(images))[:count]]


def export_tflite(model: Any, calibration: np.ndarray, path: Path) -> None:
    """Full-integer TFLite: int8 weights, activations, input and output; batch 1, as the agent runs it."""
    import tensorflow as tf

    spec = tf.TensorSpec([1, INPUT_SIZE, INPUT_SIZE, 1], tf.float32, name="image")

    def samples() -> Iterator[list[np.ndarray]]:
        for img in to_input(calibration):
            yield [img[None]]

    with (
        tempfile.TemporaryDirectory() as tmp
    ):  # a SavedModel freezes the weights; a live tf.function would not
        model.export(tmp, format="tf_saved_model", input_signature=[spec], verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        path.write_bytes(converter.convert())


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a batch of preprocessed images."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 32) -> None:
        x = to_input(images)
        self._batches = iter([{input_name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def export_onnx(model: Any, calibration: np.ndarray, path: Path) -> None:
    """Float ONNX via Keras/tf2onnx, then static int8 QDQ quantization (float input and output)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        float_path, prep_path = Path(tmp) / "float.onnx", Path(tmp) / "prep.onnx"
        with warnings.catch_warnings():  # Keras' tf2onnx shim probes np.object, which warns on numpy 2
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(float_path), format="onnx", verbose=False)
        quant_pre_process(str(float_path), str(prep_path), skip_symbolic_shape=True)
        input_name = onnx.load(str(prep_path)).graph.input[0].name
        quantize_static(
            str(prep_path),
            str(path),
            _Calibration(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
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

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(path), num_threads=NUM_THREADS)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        in_scale, in_zp = self._in["quantization"]
        out_scale, out_zp = self._out["quantization"]
        info = np.iinfo(self._in["dtype"])
        rows = []
        for gray in images:
            x = gray.astype(np.float32) * np.float32(SCALE)
            q = np.clip(np.round(x / in_scale + in_zp), info.min, info.max).astype(self._in["dtype"])
            self._interp.set_tensor(self._in["index"], q.reshape(1, INPUT_SIZE, INPUT_SIZE, 1))
            self._interp.invoke()
            out = self._interp.get_tensor(self._out["index"])[0]
            rows.append((out.astype(np.float64) - out_zp) * out_scale)
        return np.stack(rows)


class OnnxRunner:
    """Runs the QDQ ONNX model on float NHWC input, as the agent's onnxruntime backend does."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = NUM_THREADS
        self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._name = self._sess.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        outs = [
            self._sess.run(None, {self._name: to_input(images[i : i + 256])})[0]
            for i in range(0, len(images), 256)
        ]
        return np.concatenate(outs).astype(np.float64)


def _ratio(num: float, den: float) -> float:
    return round(float(num) / float(den), 4) if den else 0.0


def metrics(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, per-class P/R/F1, confusion (rows true, cols predicted), defect-vs-ok P/R (label 0: ok)."""
    pred = probs.argmax(axis=1)
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(names):
        p, r = _ratio(cm[c, c], cm[:, c].sum()), _ratio(cm[c, c], cm[c, :].sum())
        per_class[name] = {
            "precision": p,
            "recall": r,
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "support": int(cm[c, :].sum()),
        }
    true_def, pred_def = labels != 0, pred != 0
    return {
        "samples": len(labels),
        "accuracy": _ratio((pred == labels).sum(), len(labels)),
        "defect_recall": _ratio((true_def & pred_def).sum(), true_def.sum()),
        "defect_precision": _ratio((true_def & pred_def).sum(), pred_def.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
