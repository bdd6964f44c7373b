"""Postprocessor plugins: one module per task, imported only when a model of that task loads.

Like Frigate's detector registry, but lazy: a device running a classifier never
imports the detection code. Every module exposes ``create`` (the
:class:`~agent.model.postprocess.base.PostprocessorFactory` contract) and every
postprocessor returns the one :class:`~agent.model.result.InferenceResult`.
Adding a task means one module and one line in :data:`TASK_MODULES`.
"""

from __future__ import annotations

import importlib

from agent.model.manifest import Manifest, Task
from agent.model.postprocess.base import Postprocessor, PostprocessorFactory
from agent.runtimes.base import TensorSpec

TASK_MODULES: dict[Task, str] = {
    "classification": "agent.model.postprocess.classification",
    "detection": "agent.model.postprocess.detection",
    "anomaly": "agent.model.postprocess.anomaly",
}


def factory_for(task: Task) -> PostprocessorFactory:
    """The task module's ``create``, importing that module (and only it) on first use.

    ``task`` comes from a manifest, whose strict parser already refused unknown tasks;
    a test checks that every task the manifest accepts has a module here.
    """
    factory: PostprocessorFactory = importlib.import_module(TASK_MODULES[task]).create
    return factory


def make_postprocessor(
    manifest: Manifest, labels: tuple[str, ...], outputs: tuple[TensorSpec, ...], defects: frozenset[str]
) -> Postprocessor:
    """The task's postprocessor, checked against the model's real output tensors."""
    return factory_for(manifest.task)(manifest, labels, outputs, defects)


__all__ = ["TASK_MODULES", "Postprocessor", "PostprocessorFactory", "factory_for", "make_postprocessor"]
