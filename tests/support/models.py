"""Small real models built in the test run (onnx.helper): a classifier whose cost is set by a loop.

The "slow" model is a genuine ONNX graph: a chain of 256x256 matrix products that
depends on the input (so nothing is constant-folded away), then the class logits.
Tests use it as a model that overruns its budget or hangs past a deadline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

SIZE = 256


def slow_classifier(
    path: Path, iterations: int, *, classes: int = 3, width: int = 32, height: int = 32
) -> Path:
    """Write an ONNX classifier (NHWC float input) whose invoke runs ``iterations`` matrix products."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((SIZE, SIZE)) / np.sqrt(SIZE)).astype(np.float32)
    base = rng.standard_normal((1, SIZE)).astype(np.float32)
    head = rng.standard_normal((3, classes)).astype(np.float32)

    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "W"], ["prod"]),
            helper.make_node("Tanh", ["prod"], ["state_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [1, SIZE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, SIZE]),
        ],
    )
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes_hw"], ["pooled"], keepdims=0),  # [1, 3]
        helper.make_node("ReduceMean", ["pooled"], ["level"], keepdims=1),  # [1, 1]
        helper.make_node("Mul", ["base", "level"], ["state0"]),
        helper.make_node("Loop", ["trip", "cond", "state0"], ["final"], body=body),
        helper.make_node("ReduceSum", ["final"], ["total"], keepdims=1),  # [1, 1]
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("MatMul", ["pooled", "head"], ["logits0"]),
        helper.make_node("Add", ["logits0", "nothing"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, height, width, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        [
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes_hw"),
            numpy_helper.from_array(base, "base"),
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(head, "head"),
            numpy_helper.from_array(np.array(iterations, np.int64), "trip"),
            numpy_helper.from_array(np.array(True), "cond"),
            numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_package(
    root: Path,
    model_file: Path,
    *,
    name: str,
    version: str,
    labels: list[str],
    width: int,
    height: int,
    color: str = "RGB",
    budget_ms: float = 50.0,
    **manifest: Any,
) -> Path:
    """A package directory around ``model_file`` (copied in), with a correct sha256."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"model{model_file.suffix}"
    target.write_bytes(model_file.read_bytes())
    doc: dict[str, Any] = {
        "name": name,
        "version": version,
        "task": "classification",
        "file": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "labels": labels,
        "defect_labels": labels[1:],
        "input": {"width": width, "height": height, "color": color, "layout": "NHWC", "resize": "stretch"},
        "output": {"activation": "softmax"},
        "budget_ms": budget_ms,
        **manifest,
    }
    (root / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root
