"""Build the tiny fixture models under tests/fixtures/models/ (needs the ``train`` extra).

The files are committed, so the test suite itself never needs TensorFlow. Every model
is deterministic (fixed seeds, hand-set constants) and a few kilobytes:

* ``cls_u8.tflite``   int8 Keras classifier, uint8 input/output (32x32 RGB, 3 classes)
* ``cls_i8.tflite``   the same classifier with int8 input/output
* ``cls_f16.tflite``  float classifier whose input tensor is float16
* ``cls_dyn.tflite``  float TFLite classifier with dynamic height/width
* ``cls_dyn.onnx``    float ONNX classifier, batch/height/width dynamic (NCHW, 3 classes)
* ``cls_f16.onnx``    the same with float16 input and output
* ``cls_nhwc.onnx``   float NHWC ONNX classifier with the TFLite classifiers' input (for two-runtime packages)
* ``cls_qdq.onnx``    int8 QDQ ONNX classifier (onnxruntime quantize_static), 32x32 NCHW
* ``det_yolo.onnx``   YOLO raw tensor [1, 4+2, 7]; boxes constant, class scores = mean(input) * constants
* ``det_ssd.tflite``  a real TFLite_Detection_PostProcess op (anchors constant, zero box encodings),
                      class scores = mean(input) * constants
* ``anomaly_map.tflite``  float map |x - 0.5| * 2 over a 32x32 GRAY input (score = max)
* ``nan.onnx``        outputs NaN for any input

Run: ``python scripts/make_test_models.py [--out tests/fixtures/models]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"

# YOLO fixture: boxes in input pixels (cx, cy, w, h) and per-class score weights (times mean(input)).
YOLO_BOXES = np.array(
    [
        [16, 16, 16, 16],
        [17, 17, 16, 16],
        [48, 40, 20, 12],
        [16, 16, 16, 16],
        [40, 12, 8, 8],
        [5, 60, 6, 6],
        [60, 60, 4, 4],
    ],
    np.float32,
)
YOLO_SCORES = np.array(
    [[0.9, 0.1], [0.8, 0.05], [0.1, 0.7], [0.05, 0.6], [0.02, 0.01], [0.3, 0.0], [0.0, 0.0]], np.float32
)
# SSD fixture: anchors (ycenter, xcenter, h, w) normalised; class scores with background first.
SSD_ANCHORS = np.array(
    [[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.4], [0.3, 0.32, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]], np.float32
)
SSD_SCORES = np.array([[0, 0.9, 0.1], [0, 0.1, 0.8], [0, 0.7, 0.1], [0, 0.2, 0.1]], np.float32)


def _keras_classifier(channels: int = 3, size: int | None = 32, dtype: str = "float32"):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input((size, size, channels), batch_size=1, dtype=dtype)
    x = tf.keras.layers.Lambda(lambda t: tf.cast(t, tf.float32))(inp) if dtype != "float32" else inp
    x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(3)(x)
    out = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inp, out)


def _representative() -> Iterator[list[np.ndarray]]:
    rng = np.random.default_rng(1)
    for _ in range(32):
        yield [rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)]


def tflite_int8(io_type: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(_keras_classifier())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = getattr(tf, io_type)
    conv.inference_output_type = getattr(tf, io_type)
    return bytes(conv.convert())


def tflite_f16_input() -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(_keras_classifier(dtype="float16"))
    return bytes(conv.convert())


def tflite_dynamic() -> bytes:
    """Float classifier whose height and width are dynamic (-1 in the TFLite shape signature)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(_keras_classifier(size=None))
    return bytes(conv.convert())


def tflite_ssd() -> bytes:
    """A real ``TFLite_Detection_PostProcess`` op, fused by the converter as the TF OD API does."""
    import tensorflow as tf

    attrs = {
        "max_detections": "i: 10",
        "max_classes_per_detection": "i: 1",
        "use_regular_nms": "b: false",
        "nms_score_threshold": "f: 0.0",
        "nms_iou_threshold": "f: 0.5",
        "y_scale": "f: 10.0",
        "x_scale": "f: 10.0",
        "h_scale": "f: 5.0",
        "w_scale": "f: 5.0",
        "num_classes": "i: 2",
    }
    signature = " ".join(
        ['name: "TFLite_Detection_PostProcess"']
        + [f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items()]
    )

    @tf.function(experimental_implements=signature)
    def postprocess(box_encodings, class_predictions, anchors):  # type: ignore[no-untyped-def]
        del box_encodings, class_predictions, anchors
        zero = tf.constant(0.0, dtype=tf.float32)
        return zero, zero, zero, zero

    class Ssd(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32)])
        def __call__(self, x):  # type: ignore[no-untyped-def]
            m = tf.reduce_mean(x)
            scores = tf.constant(SSD_SCORES[np.newaxis]) * m
            enc = tf.zeros([1, len(SSD_ANCHORS), 4]) + 0.0 * m
            return postprocess(enc, scores, tf.constant(SSD_ANCHORS))

    module = Ssd()
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures=module.__call__.get_concrete_function())
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.allow_custom_ops = True
        return bytes(conv.convert())


def tflite_anomaly_map() -> bytes:
    import tensorflow as tf

    inp = tf.keras.Input((32, 32, 1), batch_size=1)
    out = tf.keras.layers.Lambda(lambda t: tf.abs(t - 0.5) * 2.0)(inp)
    return bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert())


def _onnx(nodes, inputs, outputs, inits, name: str) -> bytes:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="make_test_models"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def onnx_dynamic_classifier(half: bool = False) -> bytes:
    """Mean colour per channel -> 3x3 linear layer: works for any batch/height/width."""
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    x = helper.make_tensor_value_info("image", elem, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("scores", elem, ["batch", 3])
    w = numpy_helper.from_array(np.array([[4, -2, -2], [-2, 4, -2], [-2, -2, 4]], np.float32), "w")
    b = numpy_helper.from_array(np.array([0.5, 0.0, -0.5], np.float32), "b")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Cast", ["logits"], ["scores"], to=elem),
    ]
    return _onnx(nodes, [x], [y], [w, b, axes], "cls_dyn")


def onnx_nhwc_classifier() -> bytes:
    """NHWC float ONNX taking the same 32x32 RGB input as the TFLite classifiers (one manifest fits both)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 32, 32, 3])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])
    inits = [
        numpy_helper.from_array(np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]], np.float32), "w"),
        numpy_helper.from_array(np.array([1.0, 0.0, 0.0], np.float32), "b"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _onnx(nodes, [x], [y], inits, "cls_nhwc")


def onnx_conv_classifier() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.zeros(4, np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (4, 3)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(3, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], strides=[2, 2], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    return _onnx(nodes, [x], [y], inits, "cls_conv")


def onnx_qdq(float_model: bytes) -> bytes:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(2)
            self.items = iter(
                [{"image": rng.uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)} for _ in range(16)]
            )

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        src.write_bytes(float_model)
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        return dst.read_bytes()


def onnx_yolo() -> bytes:
    """Raw [1, 4+nc, N]: box rows are constants, class rows are YOLO_SCORES * mean(input)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, len(YOLO_BOXES)])
    inits = [
        numpy_helper.from_array(YOLO_BOXES.T[np.newaxis].copy(), "boxes"),
        numpy_helper.from_array(YOLO_SCORES.T[np.newaxis].copy(), "weights"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),  # all axes -> [1,1,1,1]
        helper.make_node("Squeeze", ["mean"], ["m"]),
        helper.make_node("Mul", ["weights", "m"], ["cls"]),
        helper.make_node("Concat", ["boxes", "cls"], ["output0"], axis=1),
    ]
    return _onnx(nodes, [x], [y], inits, "det_yolo")


def onnx_nan() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Div", ["z", "zero"], ["scores"]),  # 0/0
    ]
    return _onnx(nodes, [x], [y], [axes, zero], "nan")


def build_all(out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    conv = onnx_conv_classifier()
    makers = {
        "cls_u8.tflite": lambda: tflite_int8("uint8"),
        "cls_i8.tflite": lambda: tflite_int8("int8"),
        "cls_f16.tflite": tflite_f16_input,
        "cls_dyn.tflite": tflite_dynamic,
        "cls_dyn.onnx": onnx_dynamic_classifier,
        "cls_f16.onnx": lambda: onnx_dynamic_classifier(half=True),
        "cls_qdq.onnx": lambda: onnx_qdq(conv),
        "cls_nhwc.onnx": onnx_nhwc_classifier,
        "det_yolo.onnx": onnx_yolo,
        "det_ssd.tflite": tflite_ssd,
        "anomaly_map.tflite": tflite_anomaly_map,
        "nan.onnx": onnx_nan,
    }
    return write_all(out, makers)


def write_all(out: Path, makers: Mapping[str, Callable[[], bytes]]) -> dict[str, int]:
    """Write each fixture under ``out`` (folders made as needed); the size of each, by name."""
    sizes = {}
    for name, make in makers.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = make()
        path.write_bytes(data)
        sizes[name] = len(data)
    return sizes


def run(doc: str, default_out: Path, build: Callable[[Path], dict[str, int]]) -> None:
    """The command line both fixture scripts share: ``--out DIR``, then one line per file written."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    sizes = build(args.out)
    width = max(map(len, sizes), default=0)
    for name, size in sizes.items():
        print(f"{name:{width}s} {size:8d} bytes")


def main() -> None:
    run(__doc__ or "", OUT, build_all)


if __name__ == "__main__":
    main()
