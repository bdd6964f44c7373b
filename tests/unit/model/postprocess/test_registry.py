"""The task -> module map: every task a manifest accepts has a plugin, loaded only when needed."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import numpy as np
import pytest

from agent.model.manifest import Task
from agent.model.postprocess import TASK_MODULES, factory_for, make_postprocessor
from agent.model.preprocess import Transform
from agent.model.result import InferenceResult
from agent.runtimes.base import TensorSpec
from tests.support.paths import REPO
from tests.unit.model.postprocess.manifests import manifest

F32 = np.dtype(np.float32)

# For each task: labels, the model's output tensors and one frame's outputs.
CASES: dict[str, tuple[tuple[str, ...], tuple[TensorSpec, ...], list[np.ndarray]]] = {
    "classification": (("ok", "dent"), (TensorSpec("o", (1, 2), F32),), [np.array([[0.2, 0.8]], F32)]),
    "detection": (("dent",), (TensorSpec("o", (1, 5, 3), F32),), [np.full((1, 5, 3), 0.5, F32)]),
    "anomaly": (("normal", "anomaly"), (TensorSpec("o", (1, 1), F32),), [np.array([[0.9]], F32)]),
}


def test_every_task_the_manifest_accepts_has_a_module() -> None:
    assert set(TASK_MODULES) == set(get_args(Task)) == set(CASES)


@pytest.mark.parametrize("task", sorted(CASES))
def test_every_plugin_returns_the_one_result_contract(task: str) -> None:
    labels, specs, outputs = CASES[task]
    post = make_postprocessor(manifest(task, labels), labels, specs, frozenset(labels[-1:]))
    result = post(outputs, Transform(64, 64, 1.0, 1.0, 0.0, 0.0))
    assert isinstance(result, InferenceResult)
    assert set(result.scores) == set(labels) and result.label in (*labels, "ok")
    assert result.is_defect  # each case's last label wins: the contract carries the decision too


def test_factory_for_imports_the_task_module() -> None:
    factory = factory_for("anomaly")
    assert factory.__module__ == TASK_MODULES["anomaly"]


def test_only_the_loaded_tasks_module_is_imported() -> None:
    """A classifier on a device never pulls in the detection or anomaly code."""
    code = (
        "import sys\n"
        "from agent.model.postprocess import factory_for\n"
        "factory_for('classification')\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent.model.postprocess.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    assert out == "['agent.model.postprocess.base', 'agent.model.postprocess.classification']"
