"""Real-sized model packages for the benchmarks, built here (random weights; nothing downloaded).

* ``mobilenetv2-int8``: Keras' MobileNetV2 (alpha 1.0, 3.5 M parameters, ~300 MMAC) at 224x224x3,
  5 classes, full-integer int8 TFLite and int8 QDQ ONNX of the same weights;
* ``yolon-int8``: a YOLOv8n-sized detector (CSP backbone 16..256 channels, a three-scale head,
  ~3 M parameters) at 320x320x3 whose raw output is Ultralytics' ``[1, 4 + 80, 2100]`` tensor
  (cx, cy, w, h in input pixels on ONNX, 0..1 on TFLite; class scores after a sigmoid).

Random weights give the same arithmetic as trained ones, which is all a timing needs. The
int8 ranges come from a few random calibration images. Packages are cached under ``--out``
(built once, ~2 minutes on 2 cores) and reused by ``bench_e2e.py``.

    python scripts/bench_realsize.py [--out .bench-models]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("mobilenetv2-int8", "yolon-int8")
_CLASSES = ["ok", "scratch", "spot", "crack", "hole"]
_DET_CLASSES = 80


def _mobilenet(tf: Any) -> Any:
    return tf.keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=len(_CLASSES), classifier_activation=None
    )


def _conv(tf: Any, x: Any, filters: int, stride: int = 1, k: int = 3) -> Any:
    x = tf.keras.layers.Conv2D(filters, k, stride, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    return tf.keras.layers.Activation("swish")(x)


def _c2f(tf: Any, x: Any, filters: int, blocks: int) -> Any:
    """YOLOv8's C2f: split, a chain of bottlenecks, concatenate every step, 1x1 fuse."""
    x = _conv(tf, x, filters, k=1)
    half = filters // 2
    parts = [x[..., :half], x[..., half:]]
    y = parts[-1]
    for _ in range(blocks):
        y = tf.keras.layers.Add()([y, _conv(tf, _conv(tf, y, half), half)])
        parts.append(y)
    return _conv(tf, tf.keras.layers.Concatenate()(parts), filters, k=1)


def _yolon(tf: Any) -> Any:
    layers = tf.keras.layers
    inp = tf.keras.Input((320, 320, 3), batch_size=1)
    x = _conv(tf, _conv(tf, inp, 16, 2), 32, 2)
    x = _c2f(tf, x, 32, 1)
    p3 = _c2f(tf, _conv(tf, x, 64, 2), 64, 2)  # stride 8
    p4 = _c2f(tf, _conv(tf, p3, 128, 2), 128, 2)  # stride 16
    p5 = _c2f(tf, _conv(tf, p4, 256, 2), 256, 1)  # stride 32
    up4 = _c2f(tf, layers.Concatenate()([layers.UpSampling2D()(p5), p4]), 128, 1)
    up3 = _c2f(tf, layers.Concatenate()([layers.UpSampling2D()(up4), p3]), 64, 1)
    heads = []
    for feat, stride in ((up3, 8), (up4, 16), (p5, 32)):
        box = layers.Conv2D(4, 1)(_conv(tf, _conv(tf, feat, 64), 64))
        cls = layers.Conv2D(_DET_CLASSES, 1, bias_initializer=tf.keras.initializers.Constant(-4.0))(
            _conv(tf, _conv(tf, feat, 80), 80)
        )
        cells = (320 // stride) ** 2
        box = layers.Reshape((cells, 4))(layers.Activation("sigmoid")(box))
        cls = layers.Reshape((cells, _DET_CLASSES))(layers.Activation("sigmoid")(cls))
        heads.append(layers.Concatenate()([box, cls]))
    out = layers.Permute((2, 1))(layers.Concatenate(axis=1)(heads))  # [1, 84, 2100], boxes 0..1
    return tf.keras.Model(inp, out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(name: str, size: int, detection: bool, files: dict[str, Path]) -> dict[str, Any]:
    labels = [f"class{i}" for i in range(_DET_CLASSES)] if detection else _CLASSES
    out: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "task": "detection" if detection else "classification",
        "description": f"benchmark model: {name} (random weights, built by scripts/bench_realsize.py)",
        "file": {rt: p.name for rt, p in files.items()},
        "sha256": {rt: _sha(p) for rt, p in files.items()},
        "labels": labels,
        "defect_labels": labels[1:],
        "input": {
            "width": size,
            "height": size,
            "layout": "NHWC",
            "color": "RGB",
            "resize": "letterbox" if detection else "stretch",
            "scale": 1 / 255,
            "mean": [0.0],
            "std": [1.0],
        },
        "budget_ms": 250 if detection else 100,
    }
    if detection:
        out["output"] = {"format": "yolo", "box_format": "xywh", "box_units": "normalized"}
    else:
        out["output"] = {"activation": "softmax"}
    return out


def build(name: str, out: Path) -> Path:
    """Build one package into ``out/name/1.0.0`` unless it is there already; return its directory."""
    pkg = out / name / "1.0.0"
    if (pkg / "manifest.yaml").exists():
        return pkg
    from agent.model.manifest import InputSpec
    from agent.train import backend
    from agent.train.export import export_onnx, export_tflite

    tf = backend.tensorflow()
    tf.keras.utils.set_random_seed(0)
    detection = name.startswith("yolo")
    size = 320 if detection else 224
    model = _yolon(tf) if detection else _mobilenet(tf)
    spec = InputSpec(width=size, height=size, color="RGB", scale=1 / 255, mean=[0.0], std=[1.0])
    calib = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    pkg.mkdir(parents=True, exist_ok=True)
    files = {"tflite": pkg / "model.tflite", "onnx": pkg / "model.onnx"}
    export_tflite(model, calib, spec, files["tflite"])
    export_onnx(model, calib, spec, files["onnx"])
    (pkg / "manifest.yaml").write_text(
        yaml.safe_dump(_manifest(name, size, detection, files), sort_keys=False)
    )
    return pkg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench-models")
    args = parser.parse_args()
    for name in MODELS:
        print(build(name, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
