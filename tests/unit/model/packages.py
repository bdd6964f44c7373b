"""Model packages for tests, written straight from the committed fixture models (no TensorFlow needed).

``FIXTURE_MANIFESTS`` describes each fixture under tests/fixtures/models/ the way a
user would in manifest.yaml; ``write_package`` lays out a package directory from it,
computing sha256 unless a test wants a wrong one.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from tests.support.paths import DEMO_MODEL, REPO

FIXTURES = REPO / "tests" / "fixtures" / "models"
DEMO = DEMO_MODEL

_CLS = {"task": "classification", "labels": ["ok", "scratch", "dent"], "budget_ms": 2000}
_RGB32 = {"width": 32, "height": 32, "color": "RGB"}
FIXTURE_MANIFESTS: dict[str, dict[str, Any]] = {
    "cls_u8.tflite": {**_CLS, "input": _RGB32},
    "cls_i8.tflite": {**_CLS, "input": _RGB32},
    "cls_f16.tflite": {**_CLS, "input": _RGB32},
    "cls_nhwc.onnx": {**_CLS, "input": _RGB32},
    "cls_dyn.tflite": {**_CLS, "input": {"width": 40, "height": 24, "color": "RGB"}},
    "cls_dyn.onnx": {
        **_CLS,
        "input": {"width": 40, "height": 24, "layout": "NCHW"},
        "output": {"activation": "softmax"},
    },
    "cls_f16.onnx": {
        **_CLS,
        "input": {"width": 40, "height": 24, "layout": "NCHW"},
        "output": {"activation": "softmax"},
    },
    "cls_qdq.onnx": {**_CLS, "input": {**_RGB32, "layout": "NCHW"}, "output": {"activation": "softmax"}},
    "det_yolo.onnx": {
        "task": "detection",
        "labels": ["scratch", "dent"],
        "defect_labels": ["scratch", "dent"],
        "budget_ms": 2000,
        "input": {"width": 64, "height": 64, "layout": "NCHW"},
        "output": {"format": "yolo"},
    },
    "det_ssd.tflite": {
        "task": "detection",
        "labels": ["scratch", "dent"],
        "defect_labels": ["scratch", "dent"],
        "budget_ms": 2000,
        "input": {"width": 64, "height": 64},
    },
    "anomaly_map.tflite": {
        "task": "anomaly",
        "labels": ["normal", "anomaly"],
        "budget_ms": 2000,
        "input": {"width": 32, "height": 32, "color": "GRAY"},
        "output": {"format": "map"},
    },
    "nan.onnx": {**_CLS, "input": {"width": 8, "height": 8, "layout": "NCHW"}},
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_package(dest: Path, model: str, **overrides: Any) -> Path:
    """A package directory holding fixture ``model`` and its manifest (``overrides`` replace keys)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / model, dest / model)
    doc: dict[str, Any] = {"name": Path(model).stem.replace("_", "-"), "version": "1.0.0", "file": model}
    doc["sha256"] = sha256(dest / model)
    doc.update(FIXTURE_MANIFESTS[model])
    doc.update(overrides)
    (dest / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return dest


def manifest_for_pack(model: str, **overrides: Any) -> dict[str, Any]:
    """What a user would give ``pack`` for a fixture (no file/sha256)."""
    return {
        "name": Path(model).stem.replace("_", "-"),
        "version": "1.0.0",
        **FIXTURE_MANIFESTS[model],
        **overrides,
    }


def golden_dir(dest: Path, count: int = 3) -> Path:
    """A few distinct images (noise, flat colours) as PNGs."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(count):
        cv2.imwrite(str(dest / f"noise{i}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(dest / "white.png"), np.full((48, 64, 3), 255, np.uint8))
    return dest
