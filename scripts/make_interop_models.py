"""Build the exports under tests/fixtures/interop/ exactly as the tools users train with write them.

Each file reproduces its tool's tensor signature and the metadata the tool embeds, with
hand-set weights instead of a trained network, so ``model import`` reads it as it would the
real thing and the tests know which boxes and labels must come out (needs the ``train`` extra;
nothing is downloaded):

* ``ultralytics_det.onnx``    YOLOv8/YOLO11 ``format=onnx``: ``images`` [1,3,160,160] -> ``output0``
                              [1, 4+3, 525] (cx, cy, w, h in input pixels, class scores), the
                              exporter's ``metadata_props`` (names, imgsz, stride, task, ...)
* ``ultralytics_det_float32.tflite``  ``format=tflite``: NHWC input, the same tensor with boxes
                              normalised to 0..1, ``metadata.json`` appended as a zip member
* ``ultralytics_e2e.onnx``    YOLO26 (NMS-free head) ``format=onnx``: ``output0`` [1, 300, 6]
                              rows of x1, y1, x2, y2 (input pixels), score, class; ``end2end: True``
* ``ultralytics_e2e_float32.tflite``  the same head exported to TFLite (boxes 0..1)
* ``teachable/model_unquant.tflite`` + ``teachable/labels.txt``  Teachable Machine image model:
                              [1,224,224,3] float input scaled to [-1, 1], softmax over 2 classes,
                              labels as ``0 Name`` lines
* ``edge_impulse/trained.tflite`` + ``edge_impulse/labels.txt``  Edge Impulse int8 classifier:
                              int8 [1,96,96,3] input (scale 1/255, zero point -128), int8 softmax
* ``keras/classifier.keras``  a Keras 3 model with a ``Rescaling(1/255)`` first layer (takes 0..255)
* ``torch/classifier.onnx``   ``torch.onnx.export`` style: ``input`` [1,3,64,64] NCHW ImageNet-normalised,
                              ``output`` logits [1,2], producer ``pytorch``, no metadata

``expected.json`` records the known boxes (in input pixels and in the 320x240 test frame,
letterboxed to 160x160) and the labels each classifier gives a black and a white frame.
Run: ``python scripts/make_interop_models.py [--out tests/fixtures/interop]``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.make_test_models import run, write_all

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "interop"

NAMES = {0: "scratch", 1: "dent", 2: "chip"}
IMGSZ = (160, 160)  # Ultralytics writes [height, width]
STRIDES = (8, 16, 32)
ANCHORS = sum((IMGSZ[0] // s) * (IMGSZ[1] // s) for s in STRIDES)  # 525, as the real head has
FRAME = (320, 240)  # the test frame (width, height); letterboxed to 160x160: scale 0.5, 20 px bars
# (cx, cy, w, h) in input pixels, class, score. The second box overlaps the first (same class):
# a raw head's NMS must drop it; an end-to-end head already chose, so both rows come out.
BOXES = [
    ((40.0, 60.0, 32.0, 24.0), 0, 0.9),
    ((42.0, 61.0, 32.0, 24.0), 0, 0.7),
    ((110.0, 90.0, 40.0, 30.0), 2, 0.8),
]
E2E_ROWS = 300
ULTRALYTICS_VERSION = "8.3.40"


def ultralytics_metadata(
    task: str, *, end2end: bool, fmt: str, imgsz: tuple[int, int] = IMGSZ
) -> dict[str, Any]:
    """The dictionary Ultralytics' exporter embeds (``Exporter.metadata``), keys in its order."""
    pretty = "YOLO26n" if end2end else "YOLOv8n"
    return {
        "description": f"Ultralytics {pretty} model trained on parts.yaml",
        "author": "Ultralytics",
        "date": "2025-01-15T10:20:30.123456",
        "version": ULTRALYTICS_VERSION,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": list(IMGSZ),
        "names": dict(NAMES),
        "args": {"batch": 1, "half": False, "int8": False, "nms": False, "format": fmt},
        "channels": 3,
        "end2end": end2end,
    }


def raw_head(normalised: bool) -> np.ndarray:
    """[4 + nc, anchors]: the known boxes on the first anchors, every other anchor empty."""
    out = np.zeros((4 + len(NAMES), ANCHORS), np.float32)
    out[2:4] = 1.0  # empty anchors still carry a (tiny) box, as a real head's do
    for i, (box, cls, score) in enumerate(BOXES):
        out[:4, i] = box
        out[4 + cls, i] = score
    if normalised:
        out[[0, 2]] /= IMGSZ[1]
        out[[1, 3]] /= IMGSZ[0]
    return out


def e2e_head(normalised: bool) -> np.ndarray:
    """[300, 6]: x1, y1, x2, y2, score, class; rows the head did not fill are zeros."""
    out = np.zeros((E2E_ROWS, 6), np.float32)
    for i, ((cx, cy, w, h), cls, score) in enumerate(BOXES):
        out[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, cls)
    if normalised:
        out[:, [0, 2]] /= IMGSZ[1]
        out[:, [1, 3]] /= IMGSZ[0]
    return out


def _onnx_bytes(model: Any) -> bytes:
    import onnx

    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def ultralytics_onnx(end2end: bool) -> bytes:
    """The graph's output is the constant head plus 0 x mean(input), so it really runs on the input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    head = e2e_head(False)[np.newaxis] if end2end else raw_head(False)[np.newaxis]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *IMGSZ])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["head", "nothing"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(head, "head"), numpy_helper.from_array(np.float32(0.0), "zero")]
    graph = helper.make_graph(nodes, "main_graph", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], producer_name="pytorch")
    model.producer_version = "2.5.1"
    model.ir_version = 9
    for key, value in ultralytics_metadata("detect", end2end=end2end, fmt="onnx").items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)  # the exporter writes str(v): Python reprs
    return _onnx_bytes(onnx.shape_inference.infer_shapes(model))


def _tflite(fn: Any, signature: list[Any], *, int8_data: Any = None) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*signature)], fn)
    if int8_data is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = int8_data
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def ultralytics_tflite(end2end: bool) -> bytes:
    """NHWC float input, boxes 0..1, then ``metadata.json`` appended as Ultralytics' exporter does."""
    import tensorflow as tf

    head = tf.constant((e2e_head(True) if end2end else raw_head(True))[np.newaxis])

    @tf.function
    def model(x):  # type: ignore[no-untyped-def]
        return head + 0.0 * tf.reduce_mean(x)

    flat = _tflite(model, [tf.TensorSpec([1, *IMGSZ, 3], tf.float32, name="images")])
    buffer = io.BytesIO(flat)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as zf:
        meta = ultralytics_metadata("detect", end2end=end2end, fmt="tflite")
        zf.writestr("metadata.json", json.dumps(meta, indent=2))
    return buffer.getvalue()


def teachable_machine() -> bytes:
    """Teachable Machine's float image model: [-1, 1] input, softmax; mean < 0 reads Good, > 0 Scratch."""
    import tensorflow as tf

    @tf.function
    def model(x):  # type: ignore[no-untyped-def]
        m = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=False)[:, tf.newaxis]
        return tf.nn.softmax(tf.concat([-8.0 * m, 8.0 * m], axis=1))

    return _tflite(model, [tf.TensorSpec([1, 224, 224, 3], tf.float32)])


def edge_impulse() -> bytes:
    """Edge Impulse's int8 classifier: pixels 0..1 quantized with scale 1/255, zero point -128."""
    import tensorflow as tf

    @tf.function
    def model(x):  # type: ignore[no-untyped-def]
        m = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=False)[:, tf.newaxis] - 0.5
        return tf.nn.softmax(tf.concat([-16.0 * m, 16.0 * m], axis=1))

    def data():  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(5)
        for level in np.linspace(0.0, 1.0, 24):
            noise = rng.uniform(-0.05, 0.05, (1, 96, 96, 3))
            yield [np.clip(level + noise, 0, 1).astype(np.float32)]
        yield [np.zeros((1, 96, 96, 3), np.float32)]
        yield [np.ones((1, 96, 96, 3), np.float32)]

    return _tflite(model, [tf.TensorSpec([1, 96, 96, 3], tf.float32)], int8_data=data)


def keras_model() -> bytes:
    """A Keras 3 classifier that rescales 0..255 pixels itself (its first layer), softmax last."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(11)
    inp = tf.keras.Input((64, 64, 3), name="image")
    x = tf.keras.layers.Rescaling(1.0 / 255.0)(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(2, name="logits")(x)
    out = tf.keras.layers.Activation("softmax")(x)
    model = tf.keras.Model(inp, out)
    weights = np.array([[-6.0, 6.0]] * 3, np.float32), np.array([9.0, -9.0], np.float32)
    model.get_layer("logits").set_weights(weights)  # mean < 0.5 -> "good", above -> "scratch"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.keras"
        model.save(path)
        return path.read_bytes()


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def torch_onnx() -> bytes:
    """``torch.onnx.export`` naming (input, output, producer pytorch): logits of ImageNet-normalised input."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([[-2.0] * 3, [2.0] * 3], np.float32), "fc.weight"),
        numpy_helper.from_array(np.zeros(2, np.float32), "fc.bias"),
    ]
    graph = helper.make_graph(nodes, "main_graph", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.producer_version = "2.3.0"
    model.ir_version = 8
    return _onnx_bytes(model)


def frame_boxes() -> list[dict[str, Any]]:
    """The known boxes as 0..1 positions in the 320x240 test frame (letterbox: scale 0.5, pad top 20)."""
    w, h = FRAME
    scale = min(IMGSZ[1] / w, IMGSZ[0] / h)
    pad_x, pad_y = (IMGSZ[1] - round(w * scale)) // 2, (IMGSZ[0] - round(h * scale)) // 2
    out = []
    for (cx, cy, bw, bh), cls, score in BOXES:
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        box = [
            (x1 - pad_x) / scale / w,
            (y1 - pad_y) / scale / h,
            (x2 - pad_x) / scale / w,
            (y2 - pad_y) / scale / h,
        ]
        out.append({"label": NAMES[cls], "score": score, "box": [round(v, 6) for v in box]})
    return out


def expected() -> dict[str, Any]:
    return {
        "frame": {"width": FRAME[0], "height": FRAME[1]},
        "input_boxes_xywh": [list(b) for b, _, _ in BOXES],
        "raw": [b for i, b in enumerate(frame_boxes()) if i != 1],  # NMS drops the overlapping twin
        "end2end": frame_boxes(),
        "classifiers": {
            "teachable": {"black": "Good", "white": "Scratch"},
            "edge_impulse": {"black": "good", "white": "scratch"},
            "keras": {"black": "good", "white": "scratch"},
            "torch": {"black": "good", "white": "scratch"},
        },
    }


def _expected_json() -> bytes:
    return (json.dumps(expected(), indent=1) + "\n").encode()


def build_all(out: Path) -> dict[str, int]:
    makers = {
        "ultralytics_det.onnx": lambda: ultralytics_onnx(False),
        "ultralytics_det_float32.tflite": lambda: ultralytics_tflite(False),
        "ultralytics_e2e.onnx": lambda: ultralytics_onnx(True),
        "ultralytics_e2e_float32.tflite": lambda: ultralytics_tflite(True),
        "teachable/model_unquant.tflite": teachable_machine,
        "teachable/labels.txt": lambda: b"0 Good\n1 Scratch\n",
        "edge_impulse/trained.tflite": edge_impulse,
        "edge_impulse/labels.txt": lambda: b"good\nscratch\n",
        "keras/classifier.keras": keras_model,
        "torch/classifier.onnx": torch_onnx,
        "expected.json": _expected_json,
    }
    return write_all(out, makers)


def main() -> None:
    run(__doc__ or "", OUT, build_all)


if __name__ == "__main__":
    main()
