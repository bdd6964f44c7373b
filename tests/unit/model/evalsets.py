"""Real tiny ONNX models with a known decision rule, and labeled folders for evaluate/compare tests.

``threshold_classifier`` says "defect" when a gray frame's mean level is above its
threshold, so which frames a model gets wrong is known exactly: the tests can build a
challenger that is better on average and worse on one line, with real onnxruntime runs.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

GAIN = 40.0  # logit slope per unit of level: confident far from the threshold


def threshold_classifier(root: Path, threshold: float, *, labels: tuple[str, str] = ("ok", "defect")) -> Path:
    """A package: ``[ok, defect]`` logits ``GAIN * (t - level, level - t)``, level = mean of x/255."""
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["level"], keepdims=0),  # [1, 1]
        helper.make_node("Sub", ["level", "t"], ["above"]),
        helper.make_node("Mul", ["above", "sign"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "threshold",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
            numpy_helper.from_array(np.array([threshold], np.float32), "t"),
            numpy_helper.from_array(np.array([[-GAIN, GAIN]], np.float32), "sign"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / "model.onnx"))
    doc = {
        "name": "threshold",
        "version": f"{threshold:.3f}",
        "task": "classification",
        "file": "model.onnx",
        "sha256": hashlib.sha256((root / "model.onnx").read_bytes()).hexdigest(),
        "labels": list(labels),
        "defect_labels": [labels[1]],
        "input": {"width": 8, "height": 8, "color": "GRAY", "layout": "NHWC", "scale": 1 / 255},
        "output": {"activation": "softmax"},
        "budget_ms": 100,
    }
    (root / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def gray_folder(root: Path, frames: list[tuple[str, int, str]]) -> Path:
    """``root/test/{label}/{i}.png`` uniform gray frames + metadata.csv; frames are (label, level, line)."""
    rows = []
    for i, (label, level, line) in enumerate(frames):
        rel = f"test/{label}/f{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), np.full((16, 16, 3), level, np.uint8))
        rows.append({"id": f"f{i}", "path": rel, "site": "plant", "line": line, "device": f"cam-{line}"})
    with (root / "metadata.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def two_lines(root: Path) -> Path:
    """Truth: defect when level >= 128. Line a holds ok frames at 118-127, line b defects at 130-139.

    A model with threshold 0.55 (140/255) misses the 30 defects of line b; one with 0.45
    (115/255) flags the 10 ok frames of line a: the second is better on average (70/80 vs
    50/80) and worse on line a (20/30 vs 30/30).
    """
    frames = [("ok", 118 + i, "a") for i in range(10)]
    frames += [("ok", 40, "a")] * 10 + [("defect", 220, "a")] * 10
    frames += [("defect", 130 + i % 10, "b") for i in range(30)]
    frames += [("ok", 40, "b")] * 10 + [("defect", 220, "b")] * 10
    return gray_folder(root, frames)
